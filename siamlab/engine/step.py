"""The pieces of one training step that are not the optimizer: the forward + loss module, and reading
the step's record back at log steps.

The step never waits for the device: loss, probe and terms stay tensors until a log step, where
:func:`read_record` averages them over ranks and reads them back in one transfer
(``tests/test_hostsync.py``).
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import collectives


def map_tensors(fn, v):
    """``fn`` applied to every tensor in ``v`` (a tensor, or lists / tuples of them); the rest as it is."""
    if isinstance(v, torch.Tensor):
        return fn(v)
    if isinstance(v, (list, tuple)):
        return type(v)(map_tensors(fn, x) for x in v)
    return v


def map_record(fn, out):
    """The Forward record with ``fn`` applied to every tensor it holds."""
    return out.replace(**{k: map_tensors(fn, getattr(out, k)) for k in ("z", "p", "targets", "h")},
                       extra={k: map_tensors(fn, v) for k, v in out.extra.items()})


def _float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class LossStep(torch.nn.Module):
    """The method's forward and loss as one module: what DDP wraps and ``torch.compile`` compiles.

    Returns (loss, terms, record): the record of the forward with every tensor detached, so that DDP's
    search for unused parameters (``unused_parameters = True`` on a method) starts from the loss alone
    and not from record tensors the loss ignores (e.g. the alternating Symmetric Predictor's extras).

    Under bf16 autocast (``engine.bf16``) the networks run in bfloat16 but the loss is computed in
    float32 from float32 copies of the record: whitening, Sinkhorn iterations, cross-correlation and
    covariance terms are batch statistics that bfloat16's 8-bit mantissa would blur.
    """

    def __init__(self, method):
        super().__init__()
        self.method = method
        self.unused_parameters = bool(getattr(method, "unused_parameters", False))

    def forward(self, views: list, index: Optional[torch.Tensor] = None) -> tuple:
        out = map_record(_float32, self.method(views, index))
        with torch.autocast(views[0].device.type, enabled=False):
            lo = self.method.total_loss(out)
        detach = torch.Tensor.detach
        return lo.loss, {k: map_tensors(detach, v) for k, v in lo.terms.items()}, map_record(detach, out)


def read_record(rec: dict, stop: bool) -> tuple:
    """The record's tensors averaged over ranks and read back in one transfer, and whether any rank
    asked to stop. Called at log steps only (every rank at the same steps)."""
    keys = [k for k, v in rec.items() if isinstance(v, torch.Tensor)]
    ref = rec["loss"]
    parts = [rec[k].detach().to(ref.device, torch.float32).reshape(()) for k in keys]
    vec = torch.stack(parts + [torch.tensor(float(stop), device=ref.device)])
    if collectives.is_dist():
        vec = collectives.all_reduce_mean(vec)
    numbers = vec.tolist()
    return {**rec, **dict(zip(keys, numbers))}, numbers[-1] > 0
