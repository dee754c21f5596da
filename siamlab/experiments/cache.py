"""Reuse of finished runs: a cached run counts as the same run when its config means the same thing.

``config.yaml`` of a finished run is compared with the config about to run *semantically*, not as text:
a field missing from one side counts as equal when the other side holds that field's default — a field
added to :mod:`siamlab.config` after the run was made (e.g. ``data.stream``) is missing from the cached
file, a method parameter left at its default is missing from ``method.params`` on one side or the other
(``{"predictor": "mlp"}`` and ``{}`` are the same SimSiam; ``{"predictor": "tanh_fc"}`` is not). A field
with no default any more (removed from the config since the run) is ignored: no current code reads it.
Lists (``phases``) must match exactly. Every other difference — a value changed, a default changed —
makes it a different run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import yaml

from .. import config as config_mod

_MISSING = object()


def _param_defaults(method_name: str) -> dict:
    from ..methods import available

    cls = available().get(method_name)
    params = getattr(cls, "Params", None)
    if params is None:
        return {}
    out = {}
    for f in dataclasses.fields(params):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _same(cached, current, default) -> bool:
    if isinstance(current, dict) and isinstance(cached, dict):
        default = default if isinstance(default, dict) else {}
        for key in set(current) | set(cached):
            old, cur = cached.get(key, _MISSING), current.get(key, _MISSING)
            if old is _MISSING or cur is _MISSING:
                present = cur if old is _MISSING else old
                if key not in default:
                    if old is _MISSING:  # a field the cached run cannot have set: unknown, so not the same run
                        return False
                    continue  # a field removed since the cached run: nothing reads it any more
                if default[key] != present:
                    return False
            elif not _same(old, cur, default.get(key, _MISSING)):
                return False
        return True
    return cached == current


def same_config(cached: dict, current: dict) -> bool:
    """True when ``cached`` (a loaded config.yaml) describes the run ``current`` (``RunConfig.to_dict()``)."""
    if not isinstance(cached, dict):
        return False
    defaults = config_mod.RunConfig().to_dict()
    name = (current.get("method") or {}).get("name", "")
    if (cached.get("method") or {}).get("name", name) == name:
        defaults["method"]["params"] = _param_defaults(name)
    return _same(cached, current, defaults)


def load_config(path: Path) -> Optional[dict]:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def matches(run_dir: Path, current: dict) -> bool:
    """``run_dir`` holds a config.yaml describing ``current``."""
    conf = run_dir / "config.yaml"
    cached = load_config(conf) if conf.exists() else None
    return cached is not None and same_config(cached, current)
