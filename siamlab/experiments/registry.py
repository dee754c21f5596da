"""All experiments of the catalogue (SPEC §4), by id, in the order of the spec's table."""
from __future__ import annotations

from ..errors import ConfigError
from .papers import bridge, center, gen, gen_sphere, zhang
from .spec import Experiment

_MODULES = (zhang, center, gen, gen_sphere, bridge)


def all_experiments() -> list[Experiment]:
    """A fresh Experiment for every id (built on each call, so a caller may modify its copy)."""
    return [make() for mod in _MODULES for make in mod.EXPERIMENTS]


def ids() -> list[str]:
    return [e.id for e in all_experiments()]


def get(exp_id: str) -> Experiment:
    for e in all_experiments():
        if e.id == exp_id:
            return e
    raise ConfigError(f"unknown experiment {exp_id!r}; valid ids are: {', '.join(ids())} (see `siamlab reproduce --list`).")
