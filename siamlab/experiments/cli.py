"""``siamlab reproduce``: list the catalogue or run one experiment at a scale."""
from __future__ import annotations

from ..errors import ConfigError
from .spec import SCALES


def list_table() -> str:
    from ..cli import _fmt_table
    from .registry import all_experiments

    rows = [[e.id, f"{e.paper} {e.item}", e.expected, f"~{e.smoke_minutes:g} min"] for e in all_experiments()]
    return _fmt_table(rows, ["id", "paper item", "expected verdict", "smoke time (2-core CPU)"])


def reproduce(args) -> int:
    """Entry point of the CLI subcommand (args: id, list, scale, seeds, out, and ``set`` — a list of
    ``key=value`` overrides for every run — when the parser provides it). Returns the exit code."""
    import sys

    from .registry import get
    from .runner import ExperimentInterrupted, run_experiment

    if getattr(args, "list", False):
        print(list_table())
        return 0
    if not args.id:
        raise ConfigError("reproduce needs an experiment id (e.g. `siamlab reproduce zhang-t2`); `siamlab reproduce --list` shows them all.")
    if args.scale not in SCALES:
        raise ConfigError(f"--scale={args.scale!r} is not valid: expected one of {', '.join(SCALES)}.")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds={args.seeds!r} is not valid: expected an integer >= 1.")
    exp = get(args.id)
    try:
        out = run_experiment(exp, args.scale, args.seeds, args.out, overrides=getattr(args, "set", None))
    except ExperimentInterrupted as stop:
        print(f"siamlab: {stop}", file=sys.stderr)
        return 128 + stop.signum
    import json

    res = json.loads((out / "results.json").read_text())
    print(f"\n{exp.id} at {args.scale} scale: {res['verdict']}")
    for c in res["claims"]:
        print(f"  [{c['verdict']}] {c['text']}" + (" (sanity check, not counted)" if c.get("kind") == "sanity" else ""))
    print(f"report: {out / 'report.html'}")
    return 0
