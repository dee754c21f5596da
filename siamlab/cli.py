"""Command line: a thin layer over the Python API. Errors print one sentence, never a traceback."""
from __future__ import annotations

import argparse
import signal
import sys
import textwrap
from typing import Optional

from .errors import SiamlabError
from .text import fmt_table as _fmt_table

EXAMPLES = """\
examples:
  siamlab train                                   # SimCLR on Fashion-MNIST with the defaults (siamlab/config.py)
  siamlab train configs/byol_fashion_mnist.yaml --set optim.epochs=5 --set method.predictor=linear
  siamlab train --set method.name=byol --set method.momentum=0.99 --set data.name=digits
  siamlab train --resume RUN                      # RUN: the run directory `siamlab train` printed
  siamlab eval RUN --linear
  siamlab analyze RUN
  siamlab export RUN                              # RUN/export/backbone-state_dict-last.pt
  siamlab diagnose RUN/export/backbone-state_dict-last.pt
  siamlab methods
  siamlab datasets
  siamlab reproduce --list
  siamlab reproduce zhang-t2 --scale smoke
  siamlab reproduce gen-f5 --curve 1,3,8 --curve-seeds 2
  siamlab atlas simsiam --x optim.weight_decay=0,5e-3 --y optim.lr=0.1,0.5
  siamlab atlas --list
"""


HEADLINE = ("knn_backbone", "knn_projector", "ncm_backbone", "linear_top1")


def _result_table(trained: dict, random_init: dict) -> str:
    """Headline accuracies (percent), random init beside trained."""
    keys = [k for k in HEADLINE if isinstance(trained.get(k), (int, float))]
    rows = [["random init"] + [f"{random_init.get(k, float('nan')):.2f}" for k in keys], ["trained"] + [f"{trained[k]:.2f}" for k in keys]]
    return _fmt_table(rows, ["network"] + keys)


def cmd_train(args) -> int:
    from . import config
    from .engine.build import load_run_config
    from .engine.checkpoint import RESUME_SETTABLE
    from .engine.trainer import train

    if args.resume:
        cfg = load_run_config(args.resume)
        for item in args.set or []:
            key = item.split("=", 1)[0].strip()
            if key not in RESUME_SETTABLE:
                raise SiamlabError(f"--set {key} cannot change a run being resumed; only {', '.join(RESUME_SETTABLE)} can.")
        config.apply_overrides(cfg, args.set)
        if args.overwrite:
            raise SiamlabError("--overwrite starts a new run and --resume continues one; pass only one of them.")
        res = train(cfg, run_dir=args.resume, resume=True)
    else:
        cfg = config.load(args.config, args.set)
        res = train(cfg, overwrite=args.overwrite)
    s = res.summary
    if res.is_main:  # under torchrun only rank 0 reports
        print(f"\nstatus: {s['status']}" + (f" ({s['message']})" if s.get("message") else ""))
        if s.get("final"):
            print(_result_table(s["final"], s.get("random_init") or {}))
        line = _verdict_line(s)
        if line:
            print(line)
        print(f"run directory: {res.run_dir}")
    return exit_code(s["status"], res.signal)


def _verdict_line(s: dict) -> str:
    """The collapse verdict; for a run stopped early only when it has evidence, marked provisional with the step."""
    v = s.get("verdict") or {}
    if not v.get("verdict"):
        return ""
    rule = f"  ({v['rule']})" if v.get("rule") else ""
    if s["status"] != "interrupted":
        return f"verdict: {v['verdict']}{rule}"
    if v["verdict"] == "unknown":
        return ""  # stopped before any diagnostics or evaluation: nothing to say
    total = f" of {s['total_steps']}" if s.get("total_steps") else ""
    return f"verdict (provisional: the run stopped at step {s.get('steps', '?')}{total}): {v['verdict']}{rule}"


def exit_code(status: str, signum: Optional[int] = None) -> int:
    """0 for a completed run; 128 + the signal for one a signal stopped (the shell's convention, so that
    `siamlab train && ...` stops there; SIGTERM when the signal reached another rank under torchrun); 3 otherwise."""
    if status == "completed":
        return 0
    if status == "interrupted":
        return 128 + int(signum or signal.SIGTERM)
    return 3


def cmd_eval(args) -> int:
    from .engine.evaluate_run import evaluate_run

    out = evaluate_run(args.run, checkpoint=args.checkpoint, linear=args.linear, linear_epochs=args.linear_epochs,
                       progress=not args.no_progress)
    print(_result_table(out["trained"], out["random_init"]))
    return 0


def cmd_methods(args) -> int:
    from .methods import available

    rows = [[name, cls.description, cls.reference] for name, cls in available().items()]
    print(_fmt_table(rows, ["method", "description", "reference"]))
    return 0


def cmd_datasets(args) -> int:
    from . import config
    from .data import dataset_status

    data_cfg = config.load(None, args.set).data
    rows = [[d["name"], "yes" if d["available"] else "no", d["held"], d["where"], "" if d["available"] else d["how"]]
            for d in dataset_status(data_cfg=data_cfg)]
    print(_fmt_table(rows, ["dataset", "available", "training holds it in", "where", "how to get it"]))
    return 0


def cmd_data_shard(args) -> int:
    from .data.shard_writer import write_shards

    written = write_shards(args.root, args.out, per_shard=args.per_shard, on_corrupt=args.on_corrupt)
    skipped = written.pop("skipped")
    left_out = f", {len(skipped)} unreadable left out" if skipped else ""
    print(f"shards: {', '.join(f'{n} {split} images' for split, n in written.items())}{left_out} in {args.out} "
          f"(train with --set data.name=image_shards --set data.root={args.out})")
    return 0


def cmd_analyze(args) -> int:
    from .analysis.report import analyze

    analyze(args.run, out_dir=args.out)
    return 0


def cmd_reproduce(args) -> int:
    from .experiments.cli import reproduce

    return reproduce(args)


def cmd_atlas(args) -> int:
    from .experiments.cli import atlas

    return atlas(args)


def cmd_labelfree_validate(args) -> int:
    from .experiments.cli import labelfree_validate

    return labelfree_validate(args)


def cmd_report(args) -> int:
    from .report.html import build_report

    path = build_report(args.dir)
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="siamlab",
        description="Joint-embedding self-supervised learning that explains collapse.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a method (config file + dotted overrides)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", help="YAML config (optional; defaults live in siamlab/config.py)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. optim.lr=0.1 (repeatable)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in engine.out/engine.run_name (a new run never reuses a directory otherwise)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run (kNN, optional offline linear probe) next to random init")
    e.add_argument("run")
    e.add_argument("--checkpoint", default="last", choices=["last", "best", "best_unsupervised"])
    e.add_argument("--linear", action="store_true", help="also train an offline linear probe")
    e.add_argument("--linear-epochs", type=int, default=50)
    e.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    e.set_defaults(func=cmd_eval)

    sub.add_parser("methods", help="list methods with a one-line description and reference").set_defaults(func=cmd_methods)
    d = sub.add_parser("datasets", help="which datasets are available, held in memory or streamed, and how to get them")
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="data fields to assume, e.g. data.root=/data/in100")
    d.set_defaults(func=cmd_datasets)

    dt = sub.add_parser("data", help="dataset tools: `siamlab data shard ROOT OUT` writes tar shards of an image folder")
    dsub = dt.add_subparsers(dest="data_command", metavar="TOOL", required=True)
    sh = dsub.add_parser("shard", help="WebDataset-layout tar shards (image_shards) of an image folder, with a progress bar")
    sh.add_argument("root", help="image folder with train/<class>/ and val/<class>/")
    sh.add_argument("out", help="output folder (gets train/ and val/ with shard-NNNNNN.tar and index.json)")
    sh.add_argument("--per-shard", type=int, default=1000, help="images per shard (default 1000)")
    sh.add_argument("--on-corrupt", default="stop", choices=["stop", "skip"],
                    help="an image that cannot be decoded: stop (default; name them all, write nothing) or skip (leave "
                         "it out and name it), as data.on_corrupt in training")
    sh.set_defaults(func=cmd_data_shard)

    a = sub.add_parser("analyze", help="verdicts, final metrics and diagnostic plots of a run")
    a.add_argument("run")
    a.add_argument("--out", help="folder for the plots (default RUN/analysis)")
    a.set_defaults(func=cmd_analyze)

    r = sub.add_parser("reproduce", help="run an experiment of the paper catalogue")
    r.add_argument("id", nargs="?")
    r.add_argument("--list", action="store_true")
    r.add_argument("--scale", default="smoke", choices=["tiny", "smoke", "paper"])
    r.add_argument("--seeds", type=int, default=None,
                   help="seeds to start with (default: the experiment's); more are added where they can decide a claim")
    r.add_argument("--out", default=None)
    r.add_argument("--jobs", type=int, default=None,
                   help="runs made at once, one per core (default at smoke: the usable cores, at most 8; 1 at tiny "
                        "and paper scale); the numbers do not depend on it")
    r.add_argument("--budget", type=float, default=None,
                   help="multiply every arm's training steps (e.g. 4); its own folder <id>-<scale>-b<B>")
    r.add_argument("--curve", metavar="B1,B2,...", default=None,
                   help="run several budgets (e.g. 1,3,8) and plot each claim's quantity against the budget")
    r.add_argument("--curve-seeds", type=int, default=None,
                   help="seeds at the largest budget of --curve (fewer to save time; none added there)")
    r.add_argument("--max-seeds", type=int, default=None,
                   help="the most seeds an arm gets when seeds are added (default: the scale's cap, 8 at smoke); in a "
                        "--curve every budget but x1, whose run is the scale's ordinary one")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of every run, e.g. data.root=/data/cifar-100-python (repeatable)")
    r.set_defaults(func=cmd_reproduce)

    at = sub.add_parser("atlas", help="collapse atlas: train a grid over one or two knobs, map where a method collapses")
    at.add_argument("name", nargs="?", help="a named atlas (--list) or a method (then --x, optionally --y)")
    at.add_argument("--list", action="store_true", help="list the named atlases")
    at.add_argument("--x", metavar="KEY=V1,V2,...", help="the knob along the columns, e.g. optim.weight_decay=0,5e-4,5e-3")
    at.add_argument("--y", metavar="KEY=V1,V2,...", help="the knob along the rows, e.g. method.momentum=0,0.9,0.99")
    at.add_argument("--scale", default="smoke", choices=["tiny", "smoke", "paper"])
    at.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the atlas's, 1)")
    at.add_argument("--out", default=None, help="folder (default runs/atlas/<name>-<scale>)")
    at.add_argument("--jobs", type=int, default=None,
                    help="runs made at once (as reproduce: default at smoke the usable cores, at most 8); numbers do not depend on it")
    at.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of every cell (repeatable)")
    at.set_defaults(func=cmd_atlas)

    lv = sub.add_parser("labelfree-validate", help="RankMe / LiDAR / α-ReQ against kNN and the collapse verdict over "
                        "every evaluation of the runs in the given folders")
    lv.add_argument("dirs", nargs="+", metavar="DIR", help="catalogue, experiment, atlas or run folders")
    lv.add_argument("--out", default=None, help="output folder (default runs/labelfree-validation)")
    lv.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples of runs for the intervals (default 1000)")
    lv.set_defaults(func=cmd_labelfree_validate)

    rp = sub.add_parser("report", help="rebuild the HTML report of an experiment folder")
    rp.add_argument("dir")
    rp.set_defaults(func=cmd_report)

    from .interop.cli import register as register_interop

    register_interop(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except SiamlabError as err:
        msg = textwrap.shorten(str(err), width=2000, placeholder="...")
        print(f"siamlab: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("siamlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `siamlab reproduce --list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
