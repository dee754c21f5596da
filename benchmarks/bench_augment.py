"""Batched on-device augmentation vs per-sample augmentation in DataLoader workers (SPEC §5, issue 2).

SimSiam training throughput (augmented views per second) on the default CPU setting (the defaults
of siamlab/config.py: Fashion-MNIST, the small convnet, the ``gray`` preset, online probe on; the
run prints the sizes), side by side in one run:

* batched:    ``Trainer.train_step`` - one ``Augment.views`` call per batch, on the training device;
* per-sample: the same training step (``Trainer.train_on_views``) fed by a ``DataLoader`` over
              :class:`siamlab.data.persample.PerSampleViews` (the same preset and operations applied
              to one image at a time in ``--workers`` worker processes), the way most libraries do.

Blocks of steps alternate between the two so that drift on a shared machine hits both; the workers
run only during the per-sample blocks. It also times augmentation alone (no training) for both
paths. Prints views/s and the ratios.

    python benchmarks/bench_augment.py            # ~2 minutes on 2 cores
    python benchmarks/bench_augment.py --quick    # ~30 s
    python benchmarks/bench_augment.py --set data.name=synthetic --workers 4
"""
from __future__ import annotations

import argparse
import time

from common import Batches, add_common_args, build_trainer, header, set_threads, sync, time_train_steps, views_per_s

import torch
from torch.utils.data import DataLoader

from siamlab.data.persample import PerSampleViews


def per_sample_loader(trainer, workers: int) -> DataLoader:
    ds = PerSampleViews(trainer.train_ds, trainer.augment, trainer.views)
    return DataLoader(ds, batch_size=trainer.local_batch, shuffle=True, drop_last=True, num_workers=workers,
                      generator=torch.Generator().manual_seed(0))


def train_on_loader_batch(trainer, batch) -> None:
    views, idx = batch
    views = [v.to(trainer.device, non_blocking=True) for v in views]
    trainer.train_on_views(views, idx, idx.to(trainer.device))
    trainer.step += 1


def time_per_sample_steps(trainer, loader: DataLoader, steps: int) -> float:
    """Seconds for ``steps`` training steps fed by the per-sample DataLoader. Its workers start for the
    block (one untimed step while they spin up) and stop after it, so they never run during the
    batched blocks; within the block they augment concurrently with training, as in real use."""
    it = iter(loader)
    train_on_loader_batch(trainer, next(it))
    sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_on_loader_batch(trainer, next(it))
    sync(trainer.device)
    seconds = time.perf_counter() - t0
    del it  # shuts the workers down
    return seconds


def augment_only(trainer, batches: Batches, loader: DataLoader, n: int) -> tuple:
    """Views/s of augmentation alone: ``n`` batched ``Augment.views`` calls vs ``n`` batches pulled from
    the DataLoader after its first one (its workers' prefetch can make this up to ~1 batch optimistic)."""
    sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(n):
        idx = batches.next()
        trainer.augment.views(trainer.x_train[idx.to(trainer.x_train.device)], idx, trainer.views)
    sync(trainer.device)
    batched = time.perf_counter() - t0
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    per_sample = time.perf_counter() - t0
    del it
    return views_per_s(trainer, n, batched), views_per_s(trainer, n, per_sample)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one block of 2 steps per path (~30 s on an idle 2-core machine)")
    p.add_argument("--blocks", type=int, default=3, help="alternating blocks per path")
    p.add_argument("--steps", type=int, default=4, help="training steps per block")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-sample path")
    p.add_argument("--device", default="cpu")
    add_common_args(p)
    args = p.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.blocks, args.steps = 1, 2
    tr = build_trainer(["method.name=simsiam", *args.set], args.device)
    batches, loader = Batches(tr), per_sample_loader(tr, args.workers)
    time_train_steps(tr, batches, 1)  # warm-up (allocator; the diagnostics run at step 0)
    t_batched = t_sample = 0.0
    for _ in range(args.blocks):
        t_batched += time_train_steps(tr, batches, args.steps)
        t_sample += time_per_sample_steps(tr, loader, args.steps)
    n = args.blocks * args.steps
    a, b = views_per_s(tr, n, t_batched), views_per_s(tr, n, t_sample)
    aug_a, aug_b = augment_only(tr, batches, loader, 4 if args.quick else 10)
    c = tr.cfg
    print(header())
    print(f"SimSiam / {c.model.backbone} width {c.model.width} / {c.data.name} ({tr.augment.name} augment), batch "
          f"{c.optim.batch_size}, {tr.views} views, device {tr.device}, {n} timed steps per path, "
          f"{args.workers} DataLoader workers")
    print(f"training, batched on-device augmentation : {a:9.1f} views/s")
    print(f"training, per-sample in DataLoader       : {b:9.1f} views/s")
    print(f"training throughput ratio (batched / per-sample): {a / b:.2f}x")
    print(f"augmentation alone, batched              : {aug_a:9.1f} views/s")
    print(f"augmentation alone, per-sample DataLoader: {aug_b:9.1f} views/s")
    print(f"augmentation ratio (batched / per-sample): {aug_a / aug_b:.2f}x")


if __name__ == "__main__":
    main()
