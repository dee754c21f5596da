"""The whole main job (``siamlab train``, the defaults) with this code and with the code of ``--base``, over
seeds: kNN and NCM at the end (equal quality?), wall and CPU time of the whole run (evaluation included)
and its peak resident memory (README "Benchmarks").

Each training is a process of its own (``python -m siamlab train --set engine.seed=S``), run one at a time,
this code and the base alternating seed by seed; its CPU time and peak memory come from ``wait4``. The
base code is extracted with ``git archive`` into a temporary folder.

    python benchmarks/bench_quality.py                  # seeds 0 1 2: 6 main jobs, ~2 min each on 2 idle cores
    python benchmarks/bench_quality.py --seeds 0 --base cdd676d
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_shared import ROOT, extract, load

KEYS = ("knn_backbone", "knn_projector", "ncm_backbone")


def main_job(root: str, seed: int, sets: list, extra_env: dict) -> dict:
    """One ``siamlab train`` run of the code in ``root``: its summary, seconds, CPU seconds, peak RSS (MiB)."""
    out = tempfile.mkdtemp(prefix="siamlab-quality-")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra_env, PYTHONPATH=root)
    cmd = [sys.executable, "-m", "siamlab", "train", "--set", f"engine.seed={seed}", "--set", f"engine.out={out}",
           "--set", "engine.progress=false"] + [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"the main job failed in {root}:\n{err[-2000:]}")
    summary = json.loads(next(Path(out).glob("*/summary.json")).read_text())
    return {"summary": summary, "seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024}


def mean_sd(values: list) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--base", default="cdd676d", help="the commit to compare with (default: cdd676d, before issue 20)")
    p.add_argument("--set", action="append", default=[], help="config overrides for both (e.g. engine.threads=1)")
    p.add_argument("--base-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the base code's runs, e.g. OMP_WAIT_POLICY=PASSIVE: the same digits, but on a "
                        "loaded machine hours less (its times then no longer show the base's own waiting)")
    args = p.parse_args()
    base_env = dict(item.split("=", 1) for item in args.base_env)
    codes = {"this code": str(ROOT), args.base: extract(args.base)}
    runs = {name: [] for name in codes}
    loads = [load()]
    for seed in args.seeds:
        order = list(codes.items()) if seed % 2 == 0 else list(codes.items())[::-1]
        for name, root in order:
            runs[name].append(dict(main_job(root, seed, args.set, base_env if name == args.base else {}), seed=seed))
            print(f"seed {seed}, {name}: {runs[name][-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
        loads.append(load())

    from siamlab.text import fmt_table

    print(f"the main job (siamlab train, defaults{', ' + ', '.join(args.set) if args.set else ''}"
          f"{'; base code with ' + ' '.join(args.base_env) if args.base_env else ''}), seeds "
          f"{' '.join(map(str, args.seeds))}, one run at a time; load average (1/5/15 min) before and after each "
          f"seed: {' | '.join(loads)}")
    rows = []
    for name, rs in runs.items():
        for r in rs:
            s = r["summary"]
            rows.append([name, str(r["seed"]), str(s.get("threads", "torch default"))] + [f"{s['final'][k]:.2f}" for k in KEYS]
                        + [f"{s['random_init']['knn_backbone']:.2f}", f"{r['seconds']:.0f}", f"{r['cpu']:.0f}",
                           f"{r['rss']:.0f}"])
    print(fmt_table(rows, ["code", "seed", "threads", *KEYS, "random-init kNN", "wall s", "CPU s", "peak RSS MiB"]))
    rows = [[name] + [mean_sd([r["summary"]["final"][k] for r in rs]) for k in KEYS]
            + [f"{statistics.mean(r['seconds'] for r in rs):.0f}", f"{statistics.mean(r['cpu'] for r in rs):.0f}",
               f"{max(r['rss'] for r in rs):.0f}"] for name, rs in runs.items()]
    print(fmt_table(rows, ["code", *(k + " (mean ± sd)" for k in KEYS), "mean wall s", "mean CPU s", "max peak RSS MiB"]))
    new, old = runs["this code"], runs[args.base]
    ratio = lambda key: sum(r[key] for r in old) / sum(r[key] for r in new)  # noqa: E731
    print(f"this code / {args.base}: {ratio('cpu'):.2f}x the views per CPU-second, {ratio('seconds'):.2f}x per "
          f"second (whole runs, evaluation included); peak memory {max(r['rss'] for r in new) / max(r['rss'] for r in old):.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
