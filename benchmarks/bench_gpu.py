"""ResNet-18 SimSiam on one GPU, CIFAR-sized: seconds per epoch and achieved TFLOP/s (goal <= 4 s on an H100).

Setting: 50,000 random uint8 images of 3x32x32 (10 labels) held on the GPU, 2 views made on the GPU
by the ``zhang_a1`` preset (ZHANG A.1), batch 512, ResNet-18 with the CIFAR stem, SimSiam projector
2048-2048-2048 and predictor 2048-512-2048, SGD; bf16 autocast, channels_last and torch.compile on
(``--no-bf16``, ``--no-channels-last``, ``--no-compile`` turn them off). Everything else is the
config default (online probe on, diagnostics every diag.every_steps steps); ``--set`` overrides.

Timing: whole epochs of the real training loop (``siamlab.engine.loop.run_epoch``: loss read back every
LOG_EVERY steps, no other host synchronization), the device synchronized at both ends; the first
epoch compiles and warms up, the best later epoch is reported. FLOPs: torch.utils.flop_counter over
one training step's forward and backward (matmuls and convolutions, the usual convention; the
optimizer, BN and element-wise ops are not counted), times the steps of an epoch.

    python benchmarks/bench_gpu.py                 # on a CUDA machine
    python benchmarks/bench_gpu.py --epochs 3 --no-compile
    python benchmarks/bench_gpu.py --cpu-smoke     # the same code on the CPU, tiny sizes (checks the script)
"""
from __future__ import annotations

import argparse
import sys
import time

from common import Batches, add_common_args, build_trainer, header, set_threads, sync

import torch

from siamlab.data.dataset import ArrayDataset
from siamlab.engine.loop import run_epoch
from siamlab.engine.signals import StopFlag

GOAL_S = 4.0


def random_images(n: int, side: int, seed: int = 0) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return ArrayDataset(x, y, 10, "image", f"random{side}px", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def step_flops(tr) -> int:
    """Floating-point operations of one training step's forward + backward (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    idx = Batches(tr).next()
    idx_dev = idx.to(tr.device)
    views = tr._views(idx, idx_dev)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(tr.device.type, dtype=torch.bfloat16, enabled=tr.cfg.engine.bf16):
            loss = tr.method.total_loss(tr.method(views, idx_dev)).loss
        loss.float().backward()
    tr.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def time_epochs(tr, epochs: int) -> list:
    """Seconds of each epoch of the training loop."""
    seconds = []
    with StopFlag() as stop:
        for e in range(epochs):
            tr.epoch, tr.step_in_epoch = e, 0
            sync(tr.device)
            t0 = time.perf_counter()
            status, message = run_epoch(tr, stop)
            sync(tr.device)
            seconds.append(time.perf_counter() - t0)
            if status != "completed":
                sys.exit(f"bench_gpu: training stopped: {message}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2, help="epochs to run (the first compiles and warms up)")
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--cpu-smoke", action="store_true", help="run on the CPU with 512 images, batch 64, width-8 "
                   "projector, no compile (checks the script; the numbers mean nothing)")
    add_common_args(p)
    args = p.parse_args()
    set_threads(args.threads)
    if not torch.cuda.is_available() and not args.cpu_smoke:
        sys.exit("bench_gpu: no CUDA GPU on this machine; run it on a GPU machine (or pass --cpu-smoke to check the script).")
    device = "cpu" if args.cpu_smoke else "cuda"
    dim, pred, n, batch = (2048, 512, args.images, args.batch_size) if not args.cpu_smoke else (8, 4, 512, 64)
    sets = ["data.name=synthetic", "data.augment=zhang_a1", "model.backbone=resnet18", "method.name=simsiam",
            f"model.proj_hidden={dim}", f"model.proj_out={dim}", f"model.pred_hidden={pred}",
            f"optim.batch_size={batch}", f"optim.epochs={args.epochs}", "eval.every_epochs=0",
            f"engine.bf16={not args.no_bf16}", f"engine.channels_last={not args.no_channels_last}",
            f"engine.compile={not (args.no_compile or args.cpu_smoke)}", *args.set]
    tr = build_trainer(sets, device)
    tr.use_training_set(random_images(n, 32))
    flops = step_flops(tr)
    seconds = time_epochs(tr, args.epochs)
    best = min(seconds[1:] or seconds)
    tflops = flops * tr.steps_per_epoch / best / 1e12
    e = tr.cfg.engine
    name = torch.cuda.get_device_name(tr.device) if tr.device.type == "cuda" else "CPU (smoke run)"
    print(header())
    print(f"{name}: ResNet-18 SimSiam, {n} images 32x32, batch {batch}, {tr.views} views, {tr.steps_per_epoch} steps/epoch, "
          f"bf16={e.bf16} channels_last={e.channels_last} compile={e.compile}")
    print("seconds per epoch: " + ", ".join(f"{s:.2f}" for s in seconds) + f"  (best after warm-up: {best:.2f} s; goal <= {GOAL_S} s on an H100)")
    print(f"throughput: {tr.steps_per_epoch * batch * tr.views / best:,.0f} views/s, {1e3 * best / tr.steps_per_epoch:.1f} ms/step")
    print(f"FLOPs: {flops / 1e12:.3f} TFLOP per step ({flops / (batch * tr.views) / 1e9:.2f} GFLOP per view, fwd+bwd) "
          f"-> {tflops:.1f} TFLOP/s achieved")


if __name__ == "__main__":
    main()
