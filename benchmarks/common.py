"""Shared pieces of the benchmarks: a Trainer from config overrides, timed training steps, a header line.

Run the benchmarks from the repository root (``python benchmarks/bench_augment.py``); this module puts
the repository on ``sys.path`` so that ``siamlab`` imports without installing it.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import siamlab  # noqa: E402, F401  (before torch: it sets OpenMP's wait policy, siamlab/openmp.py)
import torch  # noqa: E402

from siamlab import config  # noqa: E402
from siamlab.data.order import epoch_order  # noqa: E402
from siamlab.engine.trainer import Trainer  # noqa: E402


def build_trainer(overrides: list, device: str = "cpu") -> Trainer:
    """A Trainer on the config defaults + ``overrides`` (no progress bar, no random-init evaluation,
    a temporary run directory)."""
    base = ["engine.progress=false", "eval.random_init=false", f"engine.device={device}",
            f"engine.out={tempfile.mkdtemp(prefix='siamlab-bench-')}", f"engine.threads={THREADS}"]
    return Trainer(config.load(None, base + list(overrides)))


def add_common_args(parser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (engine.threads; 0 = siamlab's default, siamlab/engine/threads.py)")
    parser.add_argument("--set", action="append", default=[], help="extra KEY=VALUE config overrides")


THREADS = 0  # engine.threads of the benchmark's trainers (every Trainer sets its count)


def set_threads(n: int) -> None:
    """Threads for the benchmark: now, and for every trainer it builds (``engine.threads``)."""
    global THREADS
    THREADS = n
    if n > 0:
        torch.set_num_threads(n)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Batches:
    """Consecutive local batches of the trainer's epoch orders (a new epoch order when one runs out)."""

    def __init__(self, trainer: Trainer):
        self.tr, self.epoch, self.pos = trainer, 0, 0
        self.order = epoch_order(len(trainer.train_ds), trainer.cfg.engine.seed, 0)

    def next(self) -> torch.Tensor:
        tr = self.tr
        if (self.pos + 1) * tr.global_batch > len(self.order):
            self.epoch, self.pos = self.epoch + 1, 0
            self.order = epoch_order(len(tr.train_ds), tr.cfg.engine.seed, self.epoch)
        start = self.pos * tr.global_batch + tr.rank * tr.local_batch
        self.pos += 1
        return self.order[start:start + tr.local_batch]


def time_train_steps(trainer: Trainer, batches: Batches, steps: int) -> float:
    """Seconds for ``steps`` calls of ``Trainer.train_step`` (the device synchronized at both ends)."""
    sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batches.next())
        trainer.step += 1
    sync(trainer.device)
    return time.perf_counter() - t0


def views_per_s(trainer: Trainer, steps: int, seconds: float) -> float:
    """Augmented views per second over all processes."""
    return steps * trainer.global_batch * trainer.views / max(seconds, 1e-9)


def header() -> str:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{torch.get_num_threads()} torch threads, load average {load} (a shared machine makes numbers noisy)")
