"""The main job's training step on the CPU: achieved FLOP/s against the machine's matmul peak, where the
time goes, and views per CPU-second against the per-sample DataLoader baseline (README "Benchmarks").

The main job is the defaults of siamlab/config.py (SimCLR, Fashion-MNIST 10k, the small ConvNet, batch
256, 2 views, ``gray`` preset, online probe, diagnostics every 50 steps). In one run it measures:

* the matmul peak: the best of ``--peak-reps`` float32 ``n x n @ n x n`` products (2·n³ FLOP each) with
  the same threads as the step, by BLAS (``torch.mm``) and by oneDNN (a 1x1 convolution), the library
  that runs the step's convolutions; the better of the two is the peak;
* the step's FLOPs (``torch.utils.flop_counter.FlopCounterMode`` over forward and backward: matmuls and
  convolutions, the usual convention) and its achieved FLOP/s = FLOPs / mean step time;
* the breakdown: the phases of ``Trainer.train_on_views`` timed one by one (augmentation, forward,
  backward, optimizer, online probe; diagnostics: one call divided by ``diag.every_steps``), next to the
  untouched ``Trainer.train_step`` time (their sum should match it), and the operators that take the
  most time (torch.profiler);
* views per CPU-second (CPU time of the training process plus, for the baseline, its DataLoader
  workers) of the main job against the same training step fed by per-sample augmentation in
  ``--workers`` DataLoader processes (:mod:`siamlab.data.persample`), blocks alternated;
* other settings (``--option``, default ``engine.channels_last=false``, the setting before issue 20): the
  step's speed against the default's, and whether one step from the same weights and views gives
  bit-identical numbers.

    python benchmarks/bench_step.py            # ~3 minutes on 2 cores
    python benchmarks/bench_step.py --quick
"""
from __future__ import annotations

import argparse
import resource
import time

from common import Batches, add_common_args, build_trainer, header, set_threads

import torch

from bench_augment import per_sample_loader, train_on_loader_batch
from siamlab.engine.probe import probe_step


def best_seconds(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peaks(n: int, reps: int) -> dict:
    """Best FLOP/s of a float32 n x n x n matrix product (2·n³ FLOP) by the two libraries the step uses:
    the BLAS of ``torch.mm`` (MKL here) and oneDNN, which runs the convolutions (a 1x1 convolution with n
    input and n output channels over n/32 x 32 pixels is that product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    x, w = torch.randn(1, n, n // 32, 32), torch.randn(n, n, 1, 1)
    return {"torch.mm (BLAS)": 2 * n**3 / best_seconds(lambda: torch.mm(a, b), reps),
            "1x1 conv2d (oneDNN)": 2 * n**3 / best_seconds(lambda: torch.nn.functional.conv2d(x, w), reps)}


def step_flops(tr, idx: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    views = tr._views(idx, idx)
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = tr.loss_step(views, idx)
        loss.backward()
    tr.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def timed_phases(tr, idx: torch.Tensor, totals: dict):
    """One step of ``Trainer.train_on_views`` (+ the views of ``train_step``), each phase timed into ``totals``."""
    def lap(name):
        nonlocal t
        now = time.perf_counter()
        totals[name] = totals.get(name, 0.0) + now - t
        t = now

    t = time.perf_counter()
    views = tr._views(idx, idx)
    lap("augmentation")
    tr._set_lr()
    loss, _, out = tr.loss_step(views, idx)
    loss = loss.float()
    lap("forward (networks + loss)")
    tr.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    lap("backward")
    tr.optimizer.step()
    tr.method.after_step(tr.step, tr.total_steps)
    lap("optimizer")
    if tr.probe is not None and out.h is not None:
        probe_step(tr.probe, out.h[0], tr._rows(tr.y_train, idx, idx))
    lap("online probe")
    tr.step += 1
    return out


def op_shares(tr, batches: Batches, steps: int, top: int = 8) -> list:
    """(operator, share of the step's CPU time) of the ``top`` operators (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tr.train_step(batches.next())
            tr.step += 1
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    return [(e.key, e.self_cpu_time_total / total) for e in rows[:top]]


def diagnostics_per_step(tr, out, reps: int = 3) -> float:
    """Seconds of one diagnostics call, spread over the ``diag.every_steps`` steps it covers."""
    every = tr.cfg.diag.every_steps
    if not every:
        return 0.0
    t0 = time.perf_counter()
    for _ in range(reps):
        tr.diag(out, every * 1000)
    return (time.perf_counter() - t0) / reps / every


def one_step(tr, idx: torch.Tensor) -> tuple:
    """(loss, weights after the step) of one step of ``tr`` on ``idx`` with torch's RNG at seed 0 (same views)."""
    torch.manual_seed(0)
    loss = tr.train_step(idx)["loss"]
    return loss, [p.detach().clone() for p in tr.method.parameters()]


def against_option(base_sets: list, option: str, steps: int) -> tuple:
    """(speed-up of the default step over the one with ``option``, whether one step gives identical numbers,
    seconds of the first step with ``option``: torch.compile's compilation, for one)."""
    plain, other = build_trainer(base_sets), build_trainer(base_sets + [option])
    idx = Batches(plain).next()
    la, wa = one_step(plain, idx)
    t0 = time.perf_counter()
    lb, wb = one_step(other, idx)
    first = time.perf_counter() - t0
    identical = torch.equal(la, lb) and all(torch.equal(a, b) for a, b in zip(wa, wb))
    seconds = {}
    for name, tr in (("plain", plain), ("other", other), ("plain", plain), ("other", other)):  # alternated
        batches = Batches(tr)
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step(batches.next())
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    return seconds["other"] / seconds["plain"], identical, first


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (DataLoader workers once shut down)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def views_per_cpu_second(tr, batches: Batches, loader, blocks: int, steps: int) -> tuple:
    """(batched, per-sample) views per CPU-second and per wall-second over alternating blocks."""
    cpu = {"batched": 0.0, "per-sample": 0.0}
    wall = dict(cpu)
    for _ in range(blocks):
        c0, w0 = cpu_seconds(), time.perf_counter()
        for _ in range(steps):
            tr.train_step(batches.next())
            tr.step += 1
        cpu["batched"] += cpu_seconds() - c0
        wall["batched"] += time.perf_counter() - w0
        c0, w0 = cpu_seconds(), time.perf_counter()
        it = iter(loader)
        for _ in range(steps):
            train_on_loader_batch(tr, next(it))
        del it  # the workers exit; their CPU time is counted
        cpu["per-sample"] += cpu_seconds() - c0
        wall["per-sample"] += time.perf_counter() - w0
    views = blocks * steps * tr.global_batch * tr.views
    return {k: views / v for k, v in cpu.items()}, {k: views / v for k, v in wall.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps for the breakdown and the plain step")
    p.add_argument("--blocks", type=int, default=2, help="alternating blocks per path for views per CPU-second")
    p.add_argument("--block-steps", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-sample baseline")
    p.add_argument("--peak-n", type=int, default=2048)
    p.add_argument("--peak-reps", type=int, default=5)
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                   help="another setting to time the default against (default: engine.channels_last=false)")
    p.add_argument("--quick", action="store_true", help="3 steps, 1 block of 2 steps, n = 1024")
    add_common_args(p)
    args = p.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.steps, args.blocks, args.block_steps, args.peak_n = 3, 1, 2, 1024
    tr = build_trainer(args.set)
    batches = Batches(tr)
    tr.step = 1  # past step 0's diagnostics: they are timed on their own
    tr.train_step(batches.next())  # warm-up
    flops = step_flops(tr, batches.next())
    peaks = matmul_peaks(args.peak_n, args.peak_reps)
    peak = max(peaks.values())
    totals, out = {}, None
    for _ in range(args.steps):
        out = timed_phases(tr, batches.next(), totals)
    totals["diagnostics (1 call / diag.every_steps)"] = diagnostics_per_step(tr, out) * args.steps
    t0 = time.perf_counter()
    for _ in range(args.steps):
        tr.train_step(batches.next())
        tr.step += 1
    plain = (time.perf_counter() - t0) / args.steps
    ops = op_shares(tr, batches, max(2, args.steps // 2))
    per_cpu, per_wall = views_per_cpu_second(tr, batches, per_sample_loader(tr, args.workers), args.blocks, args.block_steps)
    options = {o: against_option(args.set, o, max(2, args.steps // 2))
               for o in args.option or ["engine.channels_last=false"]}

    c = tr.cfg
    step = sum(totals.values()) / args.steps
    print(header())
    print(f"main job: {c.method.name} / {c.model.backbone} width {c.model.width} / {c.data.name} ({tr.augment.name}), "
          f"batch {c.optim.batch_size}, {tr.views} views, {len(tr.train_ds)} training images")
    for name, flops_s in peaks.items():
        print(f"matmul peak {args.peak_n}^3 float32, {name:20s}: {flops_s / 1e9:8.2f} GFLOP/s")
    print(f"step FLOPs (fwd + bwd, matmul + conv)  : {flops / 1e9:8.3f} GFLOP")
    print(f"step time (train_step, mean of {args.steps})     : {plain * 1e3:8.1f} ms")
    print(f"achieved                               : {flops / plain / 1e9:8.2f} GFLOP/s = {flops / plain / peak:.1%} of "
          "the better matmul peak (convolutions counted as direct ones; oneDNN may do fewer multiplications)")
    print(f"breakdown (phases timed one by one: {step * 1e3:.1f} ms per step in all):")
    for name, s in totals.items():
        print(f"  {name:40s} {s / args.steps * 1e3:8.2f} ms  {s / sum(totals.values()):6.1%}")
    print("operators by self CPU time (torch.profiler): "
          + ", ".join(f"{name.replace('aten::', '')} {share:.1%}" for name, share in ops))
    print(f"views per CPU-second, main job (batched on-device augmentation): {per_cpu['batched']:8.1f}  "
          f"({per_wall['batched']:.1f} views/s wall)")
    print(f"views per CPU-second, per-sample DataLoader ({args.workers} workers)     : {per_cpu['per-sample']:8.1f}  "
          f"({per_wall['per-sample']:.1f} views/s wall)")
    print(f"ratio (main job / per-sample), per CPU-second: {per_cpu['batched'] / per_cpu['per-sample']:.2f}x")
    for option, (speedup, identical, first) in options.items():
        print(f"default step / {option}: {speedup:.2f}x the speed (its first step: {first:.1f} s); numbers "
              + ("identical" if identical else "differ (rounding: a user gets determinism and exact resume within a "
                 "version, not an older version's digits)"))


if __name__ == "__main__":
    main()
