"""Scaling of torchrun-style training on the CPU: 1 process vs N gloo processes, same global batch.

The runs train SimSiam on the default CPU setting (siamlab/config.py; its batch is the global batch)
for the same number of steps: one process with ``--threads`` torch threads, one process with
threads / N, then N processes (each with threads / N, as torchrun does) holding 1/N of the batch
each, with global batch norm, gathered losses and DDP's gradient all-reduce over gloo. Workers are
started the way torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment).
Prints views/s, the ratios and the scaling efficiency.

    python benchmarks/bench_ddp.py            # ~1-2 minutes on 2 cores
    python benchmarks/bench_ddp.py --quick    # ~30-50 s
    python benchmarks/bench_ddp.py --threads 4 --procs 4

``--threads`` is the number of threads in all (default: the CPU count), at least one per process.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from common import ROOT, Batches, add_common_args, build_trainer, header, set_threads, time_train_steps, views_per_s


def worker(args) -> None:
    """One rank: warm-up step, then ``--steps`` timed steps; rank 0 prints a RESULT line."""
    from siamlab import collectives
    from siamlab.engine import dist

    set_threads(args.threads)
    tr = build_trainer(["method.name=simsiam", *args.set], "cpu")
    batches = Batches(tr)
    tr.step = 1  # past the step-0 diagnostics
    time_train_steps(tr, batches, 1)
    seconds = max(collectives.gather_objects(time_train_steps(tr, batches, args.steps)))
    if collectives.is_main():
        print("RESULT " + json.dumps({"world": tr.world, "seconds": seconds, "views_per_s": views_per_s(tr, args.steps, seconds),
                                      "local_batch": tr.local_batch}), flush=True)
    dist.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, threads: int, args) -> dict:
    """Run ``world`` worker processes of this script and return rank 0's RESULT."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(args.steps), "--threads", str(threads)]
    cmd += [a for s in args.set for a in ("--set", s)]
    procs = []
    for r in range(world):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if world > 1:
            env.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"bench_ddp: a worker failed (exit {p.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
    line = next(x for x in outs[0][0].splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 timed steps per run (~30 s)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per run (after one warm-up step)")
    p.add_argument("--procs", type=int, default=2, help="processes of the distributed run")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_common_args(p)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.steps = 2
    total = max(args.threads or os.cpu_count() or 1, args.procs)  # threads in all, at least one per process
    share = max(1, total // args.procs)
    one = launch(1, total, args)
    single = launch(1, share, args) if share != total else one
    many = launch(args.procs, share, args)
    print(header())
    print(f"SimSiam on the default CPU setting{' + ' + ' '.join(args.set) if args.set else ''}, global batch {one['local_batch']}, "
          f"{args.steps} timed steps per run")
    print(f"1 process  x {total} thread(s)               : {one['views_per_s']:8.1f} views/s")
    if single is not one:
        print(f"1 process  x {share} thread(s)               : {single['views_per_s']:8.1f} views/s")
    print(f"{args.procs} processes x {share} thread(s) (gloo, DDP) : {many['views_per_s']:8.1f} views/s "
          f"(local batch {many['local_batch']})")
    print(f"{args.procs} processes vs 1 process with the same {total} threads: {many['views_per_s'] / one['views_per_s']:.2f}x")
    print(f"{args.procs} processes vs 1 process with {share} thread(s): {many['views_per_s'] / single['views_per_s']:.2f}x "
          f"(scaling efficiency {many['views_per_s'] / single['views_per_s'] / args.procs:.0%})")


if __name__ == "__main__":
    main()
