"""The order in which an epoch visits the training samples, and which part of it each rank reads.

The order of every epoch is a pure function of (seed, epoch), the same for every world size: exact
resume re-creates it from the checkpoint's (epoch, step in epoch), and under torchrun the global batch
of step s is the same set of samples, in the same order, as in one process.
"""
from __future__ import annotations

import torch


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the ``n`` sample indices for ``epoch``; the same for every world size."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def local_span(step_in_epoch: int, global_batch: int, rank: int = 0, world: int = 1) -> tuple:
    """Positions [start, stop) in the epoch order of this rank's part of global batch ``step_in_epoch``.

    The global batch is order[s·B:(s+1)·B]; rank r takes its r-th contiguous block of B/world, so the
    ranks' parts concatenated in rank order are exactly one process's batch (every rank the same size).
    """
    b = global_batch // world
    start = step_in_epoch * global_batch + rank * b
    return start, start + b
