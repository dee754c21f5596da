"""One catalogue experiment at smoke scale, this code against a base commit, the same seeds and runs: the wall time and
the CPU time (the command and every process it starts) of `siamlab reproduce`, and their ratios (README "Benchmarks").

The base (default cdd676d, before issue 20) makes the experiment's runs one after another, as it could; this code makes
them with ``--jobs`` worker processes (default: the usable cores) and ``--max-seeds`` equal to ``--seeds``, so that it adds
no seeds the base would not make. Both start from an empty folder, so nothing is reused; the printed run counts say
whether both made the same runs (an arm added to the experiment since the base makes them differ). Run on a machine to itself: the
wall-time ratio is what the catalogue's wall time gains from the defaults and ``--jobs``.

    python benchmarks/bench_reproduce.py                      # zhang-f4, 3 seeds, base cdd676d
    python benchmarks/bench_reproduce.py --exp center-f4 --seeds 5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shared import extract  # noqa: E402


def run(root: str, exp: str, seeds: int, extra: list) -> dict:
    """Wall and CPU seconds of one ``siamlab reproduce`` from ``root``'s code into an empty folder."""
    out = tempfile.mkdtemp(prefix="siamlab-bench-reproduce-")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = root
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "siamlab", "reproduce", exp, "--scale", "smoke", "--seeds", str(seeds),
                           "--out", out, *extra], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"siamlab reproduce failed in {root}:\n{proc.stderr[-2000:]}")
    res = json.loads((Path(out) / "results.json").read_text())
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "runs": len(res.get("runs", [])), "verdict": res.get("verdict", "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exp", default="zhang-f4")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--base", default="cdd676d")
    ap.add_argument("--jobs", type=int, default=0, help="this code's --jobs (default: its own default)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    base = run(extract(args.base), args.exp, args.seeds, [])
    extra = ["--max-seeds", str(args.seeds)] + (["--jobs", str(args.jobs)] if args.jobs else [])
    mine = run(str(ROOT), args.exp, args.seeds, extra)  # --max-seeds: no seeds added, the base's runs
    print(f"{args.exp} at smoke, {args.seeds} seeds, load average {load:.1f} → {os.getloadavg()[0]:.1f}")
    for label, r in ((args.base, base), ("this code", mine)):
        print(f"  {label:>10}: {r['runs']} runs, wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s — {r['verdict']}")
    print(f"  this code / {args.base}: wall {base['wall'] / mine['wall']:.2f}× faster, CPU {base['cpu'] / mine['cpu']:.2f}× less")


if __name__ == "__main__":
    main()
