"""Method checks that need only the run config, made before any data is loaded (issue 14: every config check
before the first expensive step)."""
from __future__ import annotations

from . import build_params, get
from .phased import validate_phases


def check_method_config(cfg) -> None:
    """The method checks that need only the run config ``cfg``, made before any data is loaded: the method
    (or every phase's method, ZHANG Fig. 5b), its parameters, the phase schedule, and what each method's
    ``Params.check_run(cfg)`` requires of the rest of the config (BRIDGE: k divides optim.batch_size)."""
    if cfg.phases:
        specs = [mc for _, mc in validate_phases(cfg.phases, cfg.optim.epochs)]
    else:
        specs = [cfg.method]
    for mc in specs:
        params = build_params(get(mc.name).Params, mc.params, mc.name)
        check = getattr(params, "check_run", None)
        if check is not None:
            check(cfg)
