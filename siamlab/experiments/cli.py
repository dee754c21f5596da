"""``siamlab reproduce``: list the catalogue, run one experiment at a scale (and a budget), or its scale curve."""
from __future__ import annotations

from ..errors import ConfigError
from .spec import SCALES


def list_table() -> str:
    from ..text import fmt_table
    from .registry import all_experiments

    rows = [[e.id, f"{e.paper} {e.item}", e.expected, f"~{e.smoke_minutes:g} min"] for e in all_experiments()]
    return fmt_table(rows, ["id", "paper item", "expected verdict", "smoke time (2-core CPU)"])


def _check(args) -> None:
    """One sentence for each bad option, before anything runs."""
    if not args.id:
        raise ConfigError("reproduce needs an experiment id (e.g. `siamlab reproduce zhang-t2`); `siamlab reproduce --list` shows them all.")
    if args.scale not in SCALES:
        raise ConfigError(f"--scale={args.scale!r} is not valid: expected one of {', '.join(SCALES)}.")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds={args.seeds!r} is not valid: expected an integer >= 1.")
    jobs, budget = getattr(args, "jobs", None), getattr(args, "budget", None)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs={jobs!r} is not valid: expected an integer >= 1 (runs made at once).")
    if budget is not None and not budget > 0:
        raise ConfigError(f"--budget={budget!r} is not valid: expected a number > 0 (e.g. --budget 4 trains every arm 4 times as long).")
    curve, curve_seeds = getattr(args, "curve", None), getattr(args, "curve_seeds", None)
    if curve and budget is not None:
        raise ConfigError("--budget and --curve do not go together: --curve runs every budget it lists (e.g. --curve 1,3,8).")
    if curve_seeds is not None and (not curve or curve_seeds < 1):
        raise ConfigError(f"--curve-seeds={curve_seeds!r} is not valid: it sets the seeds at the largest budget of --curve, "
                          "so it needs --curve and an integer >= 1.")
    max_seeds = getattr(args, "max_seeds", None)
    if max_seeds is not None and max_seeds < 1:
        raise ConfigError(f"--max-seeds={max_seeds!r} is not valid: expected an integer >= 1 (the most seeds an arm gets).")


def _claim_lines(res: dict) -> list:
    out = []
    for c in res["claims"]:
        seeds = f" ({c['seeds']} seeds)" if isinstance(c.get("seeds"), int) else ""
        out.append(f"  [{c['verdict']}] {c['text']}{seeds}" + (" (sanity check, not counted)" if c.get("kind") == "sanity" else ""))
    return out


def reproduce(args) -> int:
    """Entry point of the CLI subcommand (args: id, list, scale, seeds, out; and when the parser provides them ``set``
    — ``key=value`` overrides for every run —, ``jobs``, ``budget``, ``curve``, ``curve_seeds``, ``max_seeds``). Returns the
    exit code."""
    import json
    import sys
    from pathlib import Path

    from .curves import parse_budgets, run_curve
    from .pool import default_jobs
    from .registry import get
    from .runner import ExperimentInterrupted, run_experiment

    if getattr(args, "list", False):
        print(list_table())
        return 0
    _check(args)
    budgets = parse_budgets(args.curve) if getattr(args, "curve", None) else None
    exp = get(args.id)
    jobs = getattr(args, "jobs", None) or default_jobs(args.scale)
    overrides, max_seeds = getattr(args, "set", None), getattr(args, "max_seeds", None)
    try:
        if budgets:
            folder = run_curve(exp, args.scale, budgets, args.out or Path("runs") / "reproduce", args.seeds,
                               getattr(args, "curve_seeds", None), jobs, overrides, max_seeds=max_seeds)
        else:
            out = run_experiment(exp, args.scale, args.seeds, args.out, overrides=overrides, jobs=jobs,
                                 budget=getattr(args, "budget", None) or 1.0, max_seeds=max_seeds)
    except ExperimentInterrupted as stop:
        print(f"siamlab: {stop}", file=sys.stderr)
        return 128 + stop.signum
    if budgets:
        curve = json.loads((folder / "curve.json").read_text())
        print(f"\n{exp.id} at {args.scale} scale, budgets ×{', ×'.join(f'{b:g}' for b in budgets)}; at ×{budgets[-1]:g}: "
              f"{curve['verdict_at_largest']}")
        for c in curve["claims"]:
            print(f"  [{c['trend']}] {c['text']}: {c['trend_text']}; at ×{budgets[-1]:g}: {c['verdict_at_largest']}")
        print(f"curve: {folder / 'curve.html'}")
        return 0
    res = json.loads((out / "results.json").read_text())
    budget = res.get("budget", 1)
    print(f"\n{exp.id} at {args.scale} scale" + (f", budget ×{budget:g}" if budget != 1 else "") + f": {res['verdict']}")
    print("\n".join(_claim_lines(res)))
    print(f"report: {out / 'report.html'}")
    return 0


def _atlas_of(args):
    """The atlas the command line asks for: a named one (its knobs replaced by --x / --y when given) or a method's
    grid over --x (and --y)."""
    import dataclasses

    from ..methods import available
    from ..text import slug
    from .atlas import Atlas, parse_knob
    from .atlases import ATLASES

    x = parse_knob(args.x, "--x") if args.x else None
    y = parse_knob(args.y, "--y") if args.y else None
    if args.name in ATLASES:
        atlas = ATLASES[args.name]
        return dataclasses.replace(atlas, x=x or atlas.x, y=y or atlas.y, reading="" if x or y else atlas.reading)
    if args.name not in available():
        raise ConfigError(f"atlas {args.name!r} is neither a named atlas ({', '.join(ATLASES)}) nor a method "
                          "(`siamlab methods` lists them); e.g. `siamlab atlas simsiam --x optim.weight_decay=0,5e-4,5e-3`.")
    if x is None:
        raise ConfigError(f"`siamlab atlas {args.name}` needs the knob to vary, e.g. --x optim.weight_decay=0,5e-4,5e-3 "
                          "(and optionally --y KEY=V1,V2,...).")
    from ..config import RunConfig, apply_overrides
    from ..data.registry import DATASETS

    data = apply_overrides(RunConfig(), args.set).data.name  # the scale preset follows the data's kind
    kind = DATASETS[data].kind if data in DATASETS else "image"
    name = slug(f"{args.name}-{x.name}" + (f"-{y.name}" if y else ""))
    return Atlas(name, args.name, x, y, data_kind=kind)


def atlas_list() -> str:
    from ..text import fmt_table
    from .atlas import cells
    from .atlases import ATLASES

    rows = [[a.name, a.method, f"{a.x.key} × {a.y.key}" if a.y else a.x.key, len(cells(a)), a.title] for a in ATLASES.values()]
    return fmt_table(rows, ["atlas", "method", "knobs", "cells", "what it maps"])


def atlas(args) -> int:
    """Entry point of ``siamlab atlas`` (args: name, list, x, y, scale, seeds, jobs, out, set). Returns the exit code."""
    import json
    import sys

    from ..text import fmt_table
    from .atlas import run_atlas
    from .pool import default_jobs
    from .runner import ExperimentInterrupted

    if args.list:
        print(atlas_list())
        return 0
    if not args.name:
        raise ConfigError("atlas needs a named atlas or a method (e.g. `siamlab atlas byol-momentum-predictor` or "
                          "`siamlab atlas simsiam --x optim.weight_decay=0,5e-4,5e-3`); `siamlab atlas --list` shows the named ones.")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds={args.seeds!r} is not valid: expected an integer >= 1.")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs={args.jobs!r} is not valid: expected an integer >= 1 (runs made at once).")
    grid = _atlas_of(args)
    try:
        out = run_atlas(grid, args.scale, args.seeds, args.out, overrides=args.set, jobs=args.jobs or default_jobs(args.scale))
    except ExperimentInterrupted as stop:
        print(f"siamlab: {stop}", file=sys.stderr)
        return 128 + stop.signum
    res = json.loads((out / "atlas.json").read_text())
    num = lambda v, d: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    rows = [[c["label"], c["verdict"] + (f" ({c['verdicts'][c['verdict']]}/{c['seeds']})" if c["seeds"] > 1 else ""),
             num(c["mean"].get("knn_gain"), 2), num(c["mean"].get("erank"), 1)] for c in res["cells"]]
    print(f"\n{res['title']} at {res['scale']} scale")
    print(fmt_table(rows, ["cell", "verdict", "kNN gain", "effective rank"]))
    if res.get("cpu_seconds") is not None:
        print(f"CPU time of the runs: {res['cpu_seconds'] / 60:.1f} min")
    print(f"report: {out / 'atlas.html'}")
    return 0


def labelfree_validate(args) -> int:
    """Entry point of ``siamlab labelfree-validate DIR... [--out OUT] [--bootstrap N]``."""
    from .labelfree_check import validate_folders

    if args.bootstrap is not None and args.bootstrap < 100:
        raise ConfigError(f"--bootstrap={args.bootstrap!r} is not valid: expected at least 100 resamples for a 95 % interval.")
    folder = validate_folders(args.dirs, args.out, reps=args.bootstrap)
    print((folder / "validation.md").read_text())
    print(f"written: {folder / 'validation.md'}, {folder / 'validation.json'}, {folder / 'scatter.png'}")
    return 0
