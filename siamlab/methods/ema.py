"""Exponential-moving-average targets shared by BYOL, MoCo, DINO and DirectPred.

BYOL (Grill et al. 2020, eq. 1 of its §3.1): ξ ← τ ξ + (1 − τ) θ, with τ raised from τ_base to 1 by
a cosine schedule; CENTER §2.4 and Fig. 7 read the momentum through the center vector.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .base import Method


def make_target(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters do not require gradient (the EMA/teacher network)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: every target parameter t ← m·t + (1 − m)·o; buffers (BN statistics) are copied.

    ``target`` must be a copy of ``online`` (same parameters in the same order).
    """
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def cosine_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: τ = 1 − (1 − τ_base)(cos(π·step/total) + 1)/2, from τ_base at step 0 to 1 at ``total``."""
    if total <= 0:
        return base
    frac = min(max(step / total, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


class EMAMethod(Method):
    """Base of BYOL, MoCo, DINO and DirectPred: ``self.target`` is an EMA copy of the online encoder,
    updated after every optimizer step with momentum ``params.momentum`` (cosine-scheduled to 1 when
    ``params.cosine_schedule``). Subclasses call :meth:`_init_target` once the online modules exist."""

    def _init_target(self):
        self.target = make_target(self.encoder)
        self._momentum = self.params.momentum

    def momentum_at(self, step: int, total: int) -> float:
        if self.params.cosine_schedule:
            return cosine_momentum(self.params.momentum, step, total)
        return self.params.momentum

    @torch.no_grad()
    def target_z(self, views) -> list:
        return [self.target(v)[1].detach() for v in views]

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        self._momentum = self.momentum_at(step, total_steps)
        ema_update_(self.target, self.encoder, self._momentum)
