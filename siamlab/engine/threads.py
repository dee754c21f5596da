"""How many CPU threads a run computes with, and why: the first line of a run.

The thread count is part of what a run computes: a reduction split over more threads adds in another
order, so another count gives other digits. It therefore depends on the config, the environment and the
machine, never on the momentary load: ``engine.threads`` when set, else ``OMP_NUM_THREADS`` when set, else
the cores this process may use (its CPU affinity; under torchrun its share of them). Set in every run, so
a run's count never depends on what ran before it in the same process.

A shared machine is handled by OpenMP's wait policy instead (siamlab/openmp.py sets
``OMP_WAIT_POLICY=PASSIVE`` before torch loads): a thread waiting for the others sleeps rather than spins
on a core another process needs. With 2 threads on 2 busy cores the main job then runs as fast as with
one thread, 3-4x faster than with spinning threads (benchmarks/bench_shared.py).
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from .. import openmp
from ..data.stream import process_cores


def env_threads() -> Optional[int]:
    """OMP_NUM_THREADS as a positive count (its first entry), or None when unset or not a count."""
    head = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(head) if head.isdigit() and int(head) > 0 else None


def choose_threads(configured: int) -> tuple:
    """(threads, why) for ``engine.threads`` = ``configured`` (0: automatic)."""
    if configured:
        return configured, f"engine.threads={configured}"
    env = env_threads()
    if env is not None:
        return env, f"OMP_NUM_THREADS={env}"
    cores = process_cores()
    return cores, f"{cores} core{'s' if cores != 1 else ''} this process may use"


def wait_note() -> str:
    """A warning when torch's OpenMP threads may spin while they wait: the user's OMP_WAIT_POLICY says so, or
    torch was loaded before siamlab could set it."""
    if openmp.USER_POLICY is not None:
        if openmp.USER_POLICY.upper() == "PASSIVE":
            return ""
        return f"; OMP_WAIT_POLICY={openmp.USER_POLICY or '(empty)'}: waiting threads spin, slow on a shared machine"
    if openmp.TORCH_FIRST:
        return ("; torch was imported before siamlab, so waiting threads spin: on a shared machine set "
                "OMP_WAIT_POLICY=PASSIVE before importing torch")
    return ""


def set_threads(configured: int) -> str:
    """Set torch's thread count for a run; return the line that says how many and why."""
    n, why = choose_threads(configured)
    torch.set_num_threads(n)
    return line(n, why)


def line(n: int, why: str) -> str:
    return f"threads: {n} ({why}{wait_note()})"
