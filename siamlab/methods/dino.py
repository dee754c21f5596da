"""DINO (Caron et al. 2021; CENTER §2.5 eq. 29): EMA teacher, centering and sharpening, cross-entropy.

The encoder's projector plays the role of DINO's head MLP; :class:`DinoHead` adds DINO's last layer:
l2-normalization and a weight-normalized linear map (norm fixed to 1) to K prototype logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..collectives import all_reduce_mean
from ..losses.dino import dino_loss
from ..losses.functional import l2n
from ..models.heads import unit_rows
from . import register
from .base import Forward, LossOut, require
from .ema import EMAMethod, ema_update_, make_target


@dataclass
class DINOParams:
    out_dim: int = 1024  # K prototypes (DINO: 65536; small for CPU)
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04  # teacher temperature at epoch 0, raised linearly to teacher_temp
    warmup_teacher_temp_epochs: int = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9  # C ← m·C + (1 − m)·mean(teacher outputs)
    momentum: float = 0.996  # teacher EMA, raised to 1 by a cosine schedule
    cosine_schedule: bool = True
    embed_teacher: bool = True  # evaluate the teacher network, as DINO does

    def validate(self):
        require(self.out_dim >= 2, "method.out_dim", self.out_dim, "an integer >= 2 (e.g. 1024)")
        for name in ("teacher_temp", "warmup_teacher_temp", "student_temp"):
            value = getattr(self, name)
            require(value > 0, f"method.{name}", value, "a temperature > 0")
        require(self.warmup_teacher_temp_epochs >= 0, "method.warmup_teacher_temp_epochs",
                self.warmup_teacher_temp_epochs, "an integer >= 0")
        require(0.0 <= self.center_momentum <= 1.0, "method.center_momentum", self.center_momentum,
                "a number in [0, 1] (e.g. 0.9)")
        require(0.0 <= self.momentum <= 1.0, "method.momentum", self.momentum, "a number in [0, 1] (e.g. 0.996)")


class DinoHead(nn.Module):
    """logits = (z/‖z‖) · (v_k/‖v_k‖): DINO's weight-normalized last layer with its norm frozen at 1."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(out_dim, in_dim) * 0.02)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return l2n(z) @ unit_rows(self.prototypes).T


def teacher_temp_at(p: DINOParams, epoch: int) -> float:
    """DINO's schedule: linear from warmup_teacher_temp (epoch 0) to teacher_temp (last warmup epoch)."""
    w = p.warmup_teacher_temp_epochs
    if epoch >= w:
        return p.teacher_temp
    frac = epoch / (w - 1) if w > 1 else 0.0
    return p.warmup_teacher_temp + (p.teacher_temp - p.warmup_teacher_temp) * frac


@register
class DINO(EMAMethod):
    name = "dino"
    description = "Self-distillation: student matches a centered, sharpened EMA teacher (CENTER eq. 29)."
    reference = "Caron et al. 2021 eq. 1-4; CENTER §2.5 eq. 29-31"
    Params = DINOParams

    def __init__(self, encoder, params: DINOParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.head = DinoHead(encoder.out_dim, params.out_dim)
        self._init_target()
        self.target_head = make_target(self.head)
        self.register_buffer("center", torch.zeros(params.out_dim))
        self._epoch = 0
        self._pending_mean: Optional[torch.Tensor] = None

    def on_epoch_start(self, epoch: int) -> None:
        self._epoch = epoch

    def forward(self, views, index=None) -> Forward:
        views = views[:2]
        hs, zs = zip(*(self.encoder(v) for v in views))
        with torch.no_grad():
            teacher = [self.target_head(t) for t in self.target_z(views)]
            if self.training:  # batch center over both views and all ranks, applied in after_step
                self._pending_mean = all_reduce_mean(torch.cat(teacher).mean(dim=0))
        extra = {"center": self.center.clone(), "teacher_temp": teacher_temp_at(self.params, self._epoch),
                 "momentum": self._momentum}
        return Forward(z=list(zs), targets=teacher, h=list(hs), index=index, extra=extra)

    def loss(self, out: Forward) -> LossOut:
        student = [self.head(z) for z in out.z]
        loss = dino_loss(student, out.targets, out.extra["center"], self.params.student_temp,
                         out.extra["teacher_temp"])
        terms = {"center_norm": out.extra["center"].norm(), "momentum": float(out.extra["momentum"])}
        return LossOut(loss, terms)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        ema_update_(self.target_head, self.head, self._momentum)
        if self._pending_mean is not None:
            m = self.params.center_momentum
            self.center.mul_(m).add_(self._pending_mean, alpha=1.0 - m)
            self._pending_mean = None

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict:
        net = self.target if self.params.embed_teacher else self.encoder
        h = net.backbone(x)
        return {"backbone": h, "projector": net.projector(h)}

    def param_groups(self):
        return [
            {"params": list(self.encoder.parameters()), "name": "encoder"},
            {"params": list(self.head.parameters()), "name": "head"},
        ]
