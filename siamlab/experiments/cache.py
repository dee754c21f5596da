"""Reuse of finished runs: a cached run counts as the same run when its config means the same thing.

``config.yaml`` of a finished run is compared with the config about to run *semantically*, not as text:
a field missing from one side counts as equal when the other side holds that field's default — a field
added to :mod:`siamlab.config` after the run was made (e.g. ``data.stream``) is missing from the cached
file, a method parameter left at its default is missing from ``method.params`` on one side or the other
(``{"predictor": "mlp"}`` and ``{}`` are the same SimSiam; ``{"predictor": "tanh_fc"}`` is not). A field
with no default any more (removed from the config since the run) is ignored: no current code reads it.
Lists (``phases``) must match exactly. Every other difference — a value changed, a default changed —
makes it a different run, except, for a finished run, a field of :data:`CHECKPOINT_ONLY`: it chooses which checkpoint
file the run keeps and changes no number the run records (what an experiment reads), so a default changed there does
not make every finished run new (an interrupted run must match it too: its checkpoint holds the score to compare).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from .. import config as config_mod

CHECKPOINT_ONLY = ("eval.best_unsupervised",)  # which evaluation checkpoints/best_unsupervised.pt keeps

def same_config(cached: dict, current: dict, ignore: tuple = ()) -> bool:
    """True when ``cached`` (a loaded config.yaml) describes the run ``current`` (``RunConfig.to_dict()``):
    :func:`siamlab.config.differences` finds nothing but the keys in ``ignore``, judged against the config's defaults
    and, for the same method, its ``Params`` defaults."""
    if not isinstance(cached, dict):
        return False
    from ..methods import param_defaults

    defaults = config_mod.RunConfig().to_dict()
    name = (current.get("method") or {}).get("name", "")
    if (cached.get("method") or {}).get("name", name) == name:
        defaults["method"]["params"] = param_defaults(name)
    return all(key in ignore for key, _, _ in config_mod.differences(cached, current, defaults=defaults))


def load_config(path: Path) -> Optional[dict]:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def matches(run_dir: Path, current: dict, ignore: tuple = ()) -> bool:
    """``run_dir`` holds a config.yaml describing ``current`` (the keys in ``ignore`` aside)."""
    conf = run_dir / "config.yaml"
    cached = load_config(conf) if conf.exists() else None
    return cached is not None and same_config(cached, current, ignore)
