"""Cost of the live diagnostics (SPEC §2: "without stalling training"; goal ≤ 3 % overhead).

Times ``Trainer.train_step`` with diagnostics off (``diag.every_steps=0``) and on (default: every 50
steps, gradient decomposition included), alternating blocks of steps so that drift on a shared
machine hits both equally, and also times one diagnostics call on its own. Prints

    step time off / on, the measured overhead, and the per-call cost amortized over every_steps.

Example (GPU):  python benchmarks/bench_diagnostics.py --device cuda --backbone resnet18 --batch-size 256
Example (CPU):  python benchmarks/bench_diagnostics.py --device cpu --backbone convnet --batch-size 64 --steps 100
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch

from siamlab import config
from siamlab.engine.trainer import Trainer


def build(args, every: int) -> Trainer:
    overrides = [
        f"data.name={args.dataset}", f"model.backbone={args.backbone}", f"method.name={args.method}",
        f"optim.batch_size={args.batch_size}", f"model.proj_hidden={args.dim}", f"model.proj_out={args.dim}",
        f"diag.every_steps={every}", f"engine.device={args.device}", "engine.progress=false",
        "eval.online_probe=false", "eval.random_init=false", f"engine.out={tempfile.mkdtemp()}",
    ] + list(args.set or [])
    return Trainer(config.load(None, overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(tr: Trainer, steps: int) -> float:
    """Seconds per step over ``steps`` consecutive train steps (the diagnostics run where should_log says)."""
    order = torch.randperm(len(tr.train_ds))
    sync(tr.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        s = (tr.step % tr.steps_per_epoch) * tr.local_batch
        tr.train_step(order[s:s + tr.local_batch])
        tr.step += 1
    sync(tr.device)
    return (time.perf_counter() - t0) / steps


def time_one_call(tr: Trainer, repeats: int = 5) -> float:
    """Seconds for one LiveDiagnostics call on a fresh forward record (median of ``repeats``)."""
    x = tr.x_train[: tr.local_batch].to(tr.device)
    views = tr.augment.views(x, torch.arange(tr.local_batch, device=tr.device), tr.views)
    out = tr.forward(views, torch.arange(tr.local_batch, device=tr.device))
    times = []
    for _ in range(repeats):
        sync(tr.device)
        t0 = time.perf_counter()
        tr.diag(out, 0)
        sync(tr.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--backbone", default="convnet")
    p.add_argument("--method", default="simsiam")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--dim", type=int, default=2048, help="projector hidden and output size (ZHANG A.1: 2048)")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=200, help="steps per measured block (a multiple of --every)")
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--every", type=int, default=50, help="diag.every_steps when on (config default 50)")
    p.add_argument("--set", action="append", help="extra KEY=VALUE config overrides")
    args = p.parse_args()

    off, on = build(args, 0), build(args, args.every)
    on.method.load_state_dict(off.method.state_dict())
    time_block(off, 5), time_block(on, 5)  # warm-up (allocator, kernels); diag runs at step 0 here
    t_off, t_on = [], []
    for _ in range(args.blocks):
        on.step = off.step = 0
        t_off.append(time_block(off, args.steps))
        t_on.append(time_block(on, args.steps))
    a, b = statistics.median(t_off), statistics.median(t_on)
    call = time_one_call(on)
    print(f"device {on.device}, {args.method} / {args.backbone} / {args.dataset}, batch {args.batch_size}, d {args.dim}")
    print(f"step time, diagnostics off        : {1e3 * a:8.2f} ms")
    print(f"step time, diagnostics every {args.every:<4d} : {1e3 * b:8.2f} ms")
    print(f"measured overhead                 : {100 * (b - a) / a:+8.2f} %")
    print(f"one diagnostics call              : {1e3 * call:8.2f} ms = {100 * call / (args.every * a):.2f} % "
          f"of {args.every} steps (goal <= 3 %)")


if __name__ == "__main__":
    main()
