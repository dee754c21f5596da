"""The main job's training speed side by side with today's code and the per-sample recipe, on a machine
to itself and with one other CPU-bound process beside it (README "Benchmarks").

Each contender is a process of its own (benchmarks/contender.py: OpenMP's wait policy is fixed when torch
loads, so settings of the runtime cannot be compared inside one process), built once and then asked for
blocks of training steps in turn: every round runs one block of each contender, in a rotating order, so
that a drift of the machine's load hits them all alike. Contenders:

* ``this code``: the main job (the defaults of siamlab/config.py) with this checkout's defaults;
* ``<base>``: the same main job with the code of commit ``--base`` (default cdd676d, before issue 20),
  extracted with ``git archive`` into a temporary folder;
* ``per-sample recipe``: the standard recipe with PyTorch's defaults: the ``--base`` code's training step
  fed by per-sample augmentation in ``--workers`` DataLoader processes (their CPU time counted);
* ``--also LABEL:SETTING,...``: this code with other settings (``engine.*=...`` config overrides, or
  environment variables such as ``OMP_WAIT_POLICY=ACTIVE``), e.g. to show what each default brings.

Phases: ``alone`` (the benchmark starts nothing beside the contenders) and ``competitor`` (one
``while True: pass`` process runs for the whole phase). Prints views/s, views per CPU-second (the
contender's own processes), the share of its speed alone each keeps beside the competitor, ratios per
CPU-second, and the load average around each phase.

    python benchmarks/bench_shared.py                       # 3 rounds of 1 epoch (39 steps), ~10 min idle
    python benchmarks/bench_shared.py --quick               # 1 round of 6 steps
    python benchmarks/bench_shared.py --also "1 thread:engine.threads=1" --also "NCHW:engine.channels_last=false"
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENDER = Path(__file__).resolve().parent / "contender.py"
COMPETITOR = "while True: pass"


def extract(rev: str) -> str:
    """The repository at ``rev`` in a temporary folder (``git archive``: no worktree to clean up)."""
    out = tempfile.mkdtemp(prefix=f"siamlab-{rev}-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


class Contender:
    def __init__(self, label: str, root: str, sets: list, env: dict, feed: str = "batched", workers: int = 2):
        self.label, self.wall, self.cpu, self.steps = label, {}, {}, {}
        full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "PYTHONPATH")}
        full.update(env)
        spec = {"root": root, "sets": sets, "feed": feed, "workers": workers}
        self.proc = subprocess.Popen([sys.executable, str(CONTENDER), json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=full, cwd=root)
        hello = json.loads(self.proc.stdout.readline())
        self.threads, self.views_per_step, self.rss = hello["threads"], hello["views_per_step"], 0.0

    def block(self, steps: int, phase: str) -> None:
        self.proc.stdin.write(json.dumps({"steps": steps}) + "\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        for store, value in ((self.wall, r["wall"]), (self.cpu, r["cpu"]), (self.steps, steps)):
            store[phase] = store.get(phase, 0) + value
        self.rss = r["peak_rss_mib"]

    def rate(self, phase: str, per: str) -> float:
        seconds = (self.wall if per == "wall" else self.cpu)[phase]
        return self.steps[phase] * self.views_per_step / seconds

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def parse_also(text: str) -> tuple:
    label, _, settings = text.partition(":")
    sets, env = [], {}
    for item in filter(None, (s.strip() for s in settings.split(","))):
        key, _, value = item.partition("=")
        if key.isupper():
            env[key] = value
        else:
            sets.append(item)
    return label, sets, env


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="cdd676d", help="the commit to compare with (default: cdd676d, before issue 20)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=39, help="steps per block (39 = one epoch of the main job)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-sample recipe")
    p.add_argument("--phases", default="alone,competitor", help="alone: no process started beside; competitor: one")
    p.add_argument("--also", action="append", default=[], metavar="LABEL:SETTING,...")
    p.add_argument("--quick", action="store_true", help="1 round of 6 steps")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps = 1, 6
    base = extract(args.base)
    contenders = [Contender("this code", str(ROOT), [], {}), Contender(args.base, base, [], {}),
                  Contender("per-sample recipe", base, [], {}, "per-sample", args.workers)]
    contenders += [Contender(label, str(ROOT), sets, env) for label, sets, env in map(parse_also, args.also)]
    phases = args.phases.split(",")
    loads = {}
    for phase in phases:
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if phase == "competitor" else None
        before = load()
        try:
            for r in range(args.rounds):
                k = r % len(contenders)
                for c in contenders[k:] + contenders[:k]:
                    c.block(args.steps, phase)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
        loads[phase] = f"{before} -> {load()}"
    for c in contenders:
        c.close()
    report(contenders, phases, loads, args)


def report(contenders: list, phases: list, loads: dict, args) -> None:
    from siamlab.text import fmt_table

    import platform

    print(f"{platform.machine()}, {os.cpu_count()} CPU cores ({len(os.sched_getaffinity(0))} usable); main job "
          f"(defaults of siamlab/config.py); {args.rounds} round(s) of {args.steps} steps per contender and phase, "
          "contenders interleaved block by block")
    for phase in phases:
        print(f"load average (1/5/15 min) during {phase}: {loads[phase]}")
    head = ["contender", "threads"]
    for phase in phases:
        head += [f"{phase}: views/s", f"{phase}: views/CPU-s"]
    if "alone" in phases and "competitor" in phases:
        head.append("kept beside competitor")
    rows = []
    for c in contenders:
        row = [c.label, str(c.threads)]
        for phase in phases:
            row += [f"{c.rate(phase, 'wall'):.0f}", f"{c.rate(phase, 'cpu'):.0f}"]
        if "alone" in phases and "competitor" in phases:
            row.append(f"{c.rate('competitor', 'wall') / c.rate('alone', 'wall'):.0%}")
        rows.append(row)
    print(fmt_table(rows, head))
    new, old, recipe = contenders[:3]
    for phase in phases:
        print(f"{phase}: this code / {old.label}: {new.rate(phase, 'cpu') / old.rate(phase, 'cpu'):.2f}x per CPU-second, "
              f"{new.rate(phase, 'wall') / old.rate(phase, 'wall'):.2f}x per second; this code / per-sample recipe: "
              f"{new.rate(phase, 'cpu') / recipe.rate(phase, 'cpu'):.2f}x per CPU-second, "
              f"{new.rate(phase, 'wall') / recipe.rate(phase, 'wall'):.2f}x per second")
    print("peak resident memory of the contender processes (MiB): "
          + ", ".join(f"{c.label} {c.rss:.0f}" for c in contenders))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
