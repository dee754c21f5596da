"""MoCo v2 (He et al. 2020; Chen et al. 2020b): momentum key encoder and a FIFO queue of negative keys.

The queue should hold fewer keys than the training set has images (at most about one epoch of
keys; for small datasets use e.g. ``queue_size`` ≤ train size / 2): keys older than an epoch come
from a stale encoder, and a queue longer than the dataset contains the query image's own old key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..collectives import gather_nograd
from ..losses.functional import l2n
from ..losses.moco import moco_loss
from . import register
from .base import Forward, GradFrame, LossOut, StepCounter, require
from .ema import EMAMethod


@dataclass
class MoCoParams:
    tau: float = 0.2  # MoCo v2 temperature
    queue_size: int = 4096  # K negatives (MoCo: 65536 on ImageNet; keep below the dataset size)
    momentum: float = 0.99  # key-encoder EMA momentum
    cosine_schedule: bool = False  # MoCo keeps the momentum constant
    symmetric: bool = False  # ½[ℓ(q1,k2) + ℓ(q2,k1)] instead of MoCo v2's ℓ(q1,k2)

    def validate(self):
        require(self.tau > 0, "method.tau", self.tau, "a temperature > 0 (e.g. 0.2)")
        require(self.queue_size >= 1, "method.queue_size", self.queue_size, "an integer >= 1 (e.g. 4096)")
        require(0.0 <= self.momentum <= 1.0, "method.momentum", self.momentum, "a number in [0, 1] (e.g. 0.99)")


@torch.no_grad()
def enqueue_(queue: torch.Tensor, ptr: int, keys: torch.Tensor) -> int:
    """FIFO ring buffer, in place: write ``keys`` at rows ptr, ptr+1, ... (mod K); returns the new pointer.
    With more keys than rows only the newest K are kept."""
    k = queue.shape[0]
    keys = keys[-k:]
    rows = (ptr + torch.arange(keys.shape[0], device=queue.device)) % k
    queue.index_copy_(0, rows, keys.to(queue.dtype))
    return (ptr + keys.shape[0]) % k


@register
class MoCo(EMAMethod):
    name = "moco"
    description = "InfoNCE against a momentum encoder's key and a FIFO queue of past keys (MoCo v2)."
    reference = "He et al. 2020; Chen et al. 2020b; ZHANG eq. 5"
    Params = MoCoParams

    def __init__(self, encoder, params: MoCoParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self._init_target()
        self.register_buffer("queue", l2n(torch.randn(params.queue_size, encoder.out_dim)))
        self.queue_ptr = StepCounter()
        self._pending: Optional[torch.Tensor] = None

    def forward(self, views, index=None) -> Forward:
        views = views[:2]
        hs, qs = zip(*(self.encoder(v) for v in views))
        ks = self.target_z(views)
        if self.training:  # keys of this batch (all ranks) join the queue in after_step
            self._pending = gather_nograd(l2n(ks[1]))
        # a snapshot: after_step writes the buffer in place, the record must keep this step's negatives
        return Forward(z=list(qs), targets=ks, h=list(hs), index=index, extra={"queue": self.queue.clone()})

    def loss(self, out: Forward) -> LossOut:
        (q1, q2), (k1, k2) = out.z, out.targets
        p = self.params
        return LossOut(moco_loss(q1, q2, k1, k2, out.extra["queue"], p.tau, p.symmetric))

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        if self._pending is not None:
            self.queue_ptr.set(enqueue_(self.queue, int(self.queue_ptr), self._pending))
            self._pending = None

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂ℓ/∂Q_a = (K_b − Σ_i λ_i Z_i)/(Mτ) with Z_0 = K_b (ZHANG eq. 6): basic part the key K_b.
        scale = out.z[0].shape[0] * self.params.tau * (2.0 if self.params.symmetric else 1.0)
        return GradFrame(anchor=("z", 0), basic=("targets", 1), scale=scale)

    def param_groups(self):
        return [{"params": list(self.encoder.parameters()), "name": "encoder"}]
