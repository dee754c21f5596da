"""Collective operations over the ranks of a torchrun job; identities in one process (SPEC §6).

The layer below losses, methods, evaluation and diagnostics: what they need to see the global batch
(gradient-carrying all-gather, all-gather without gradient, all-reduce) and who this process is (rank,
world size). Joining the process group, DDP and failure handling belong to the engine
(:mod:`siamlab.engine.dist`).

Global-batch semantics. Every rank holds a contiguous slice of the global batch (in rank order) and
DDP averages parameter gradients over ranks. A loss that needs batch statistics gathers its tensors
with :func:`gather_with_grad` (all_gather forward, all_reduce-sum + own slice backward), so N processes
holding a slice each compute the same loss and the same gradients as one process holding the batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


# --- who am I ---------------------------------------------------------------------------------------
def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main() -> bool:
    return rank() == 0


# --- with gradient --------------------------------------------------------------------------------------
class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the incoming gradients over ranks and returns this rank's slice.

    With a loss that is a mean over the global batch, each rank's backward then yields exactly the
    gradient that one process holding the whole batch would compute for its local samples (times the
    world size, which DDP's gradient averaging divides out).
    """

    @staticmethod
    def forward(ctx, x):
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        r = dist.get_rank()
        return grad[r * n:(r + 1) * n]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward is the same sum of the incoming gradients (every rank's output
    depends on every rank's input)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The global batch (rank order) along dim 0, carrying gradient back to this rank's rows."""
    if not is_dist() or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def all_reduce_sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    if not is_dist() or dist.get_world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


# --- without gradient -----------------------------------------------------------------------------------
@torch.no_grad()
def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    if not is_dist() or dist.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if is_dist():
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


def broadcast_object(obj):
    """``obj`` as rank 0 has it."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects; CPU tensors)."""
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
