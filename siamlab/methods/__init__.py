"""Method registry: ``@register`` a :class:`~siamlab.methods.base.Method` subclass under its name."""
from __future__ import annotations

import dataclasses
import importlib

from ..errors import unknown_name
from .base import Forward, GradFrame, LossOut, Method, build_params

METHODS: dict[str, type] = {}

# Modules that define methods; imported lazily so that `import siamlab` stays fast.
_MODULES = ["simsiam", "simclr", "triplet", "byol", "moco", "dino", "directpred", "center", "naive", "mirror", "sympred", "inverse", "eoa", "bnmse", "surgery", "conjecture", "barlow", "vicreg", "swav", "wmse", "bridge", "decorrelation"]


def register(cls: type) -> type:
    METHODS[cls.name] = cls
    return cls


def _load_all() -> None:
    for m in _MODULES:
        importlib.import_module(f"{__name__}.{m}")


def available() -> dict[str, type]:
    _load_all()
    return dict(sorted(METHODS.items()))


def get(name: str) -> type:
    _load_all()
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def param_defaults(name: str) -> dict:
    """The knobs of method ``name`` at their defaults (``Params`` field -> default); {} for an unknown method or
    one without knobs. :func:`siamlab.config.differences` takes them to judge ``method.params``."""
    params = getattr(available().get(name), "Params", None)
    fields = dataclasses.fields(params) if params is not None else ()
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in fields
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def build_method(method_cfg, encoder, model_cfg):
    """Instantiate the configured method around ``encoder`` (validating its parameters)."""
    cls = get(method_cfg.name)
    params = build_params(cls.Params, method_cfg.params, method_cfg.name)
    method = cls(encoder, params, model_cfg)
    method.decor_weight = float(method_cfg.decor_weight)
    return method


__all__ = ["Forward", "GradFrame", "LossOut", "Method", "METHODS", "register", "available", "get", "param_defaults", "build_method"]
