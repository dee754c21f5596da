"""DirectPred (Tian, Chen & Ganguli 2021, eq. 18-19): BYOL whose linear predictor is set, not trained.

F̂ ← ρ F̂ + (1 − ρ) E_B[z zᵀ] (eq. 19); with F̂ = U diag(s) Uᵀ, W_p = U diag(p) Uᵀ and
p_j = sqrt(s_j)/max_j sqrt(s_j) + ε (eq. 18), so W_p is symmetric PSD with the eigenvectors of F̂ —
the fixed point that BRIDGE Thm 3.1 (W_pᵀW_p → F Fᵀ) predicts for a trained linear predictor.
Defaults follow the authors' released command: freq = 1, ρ = 0.3, ε = 0.01.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..collectives import all_reduce_mean
from ..losses.byol import byol_loss
from ..models import build_predictor
from . import register
from .base import Forward, GradFrame, LossOut, StepCounter, require
from .ema import EMAMethod


@dataclass
class DirectPredParams:
    rho: float = 0.3  # EMA factor of the correlation estimate F̂ (eq. 19)
    eps: float = 0.01  # added to the normalized eigenvalues (eq. 18)
    freq: int = 1  # set W_p every `freq` steps
    momentum: float = 0.996  # target EMA, as BYOL
    cosine_schedule: bool = True

    def validate(self):
        require(0.0 <= self.rho < 1.0, "method.rho", self.rho, "a number in [0, 1) (e.g. 0.3)")
        require(self.eps >= 0, "method.eps", self.eps, "a number >= 0 (e.g. 0.01)")
        require(self.freq >= 1, "method.freq", self.freq, "an integer >= 1")
        require(0.0 <= self.momentum <= 1.0, "method.momentum", self.momentum, "a number in [0, 1] (e.g. 0.996)")


def second_moment(zs: list) -> torch.Tensor:
    """E_B[z zᵀ] over the rows of all views (d x d), accumulated in at least float32 (bf16 autocast)."""
    z = torch.cat(zs)
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    return z.T @ z / z.shape[0]


def directpred_weight(corr: torch.Tensor, eps: float) -> torch.Tensor:
    """W_p = U diag(sqrt(s_j)/max_j sqrt(s_j) + ε) Uᵀ from F̂ = U diag(s) Uᵀ (eq. 18); symmetric PSD."""
    sym = 0.5 * (corr + corr.T)
    s, u = torch.linalg.eigh(sym)
    root = s.clamp_min(0).sqrt()
    p = root / root.max().clamp_min(torch.finfo(root.dtype).tiny) + eps
    w = (u * p) @ u.T
    return 0.5 * (w + w.T)


@register
class DirectPred(EMAMethod):
    name = "directpred"
    description = "BYOL with a linear predictor set from the eigendecomposition of E[zz^T] (DirectPred)."
    reference = "Tian, Chen & Ganguli 2021 eq. 18-19; BRIDGE §2.1, Thm 3.1"
    Params = DirectPredParams

    def __init__(self, encoder, params: DirectPredParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        d = encoder.out_dim
        self.predictor = build_predictor("linear", d, model_cfg.pred_hidden)  # p = W_p z, no bias
        self.predictor.requires_grad_(False)
        with torch.no_grad():
            self.weight.copy_(torch.eye(d))
        self._init_target()
        self.register_buffer("corr", torch.zeros(d, d))
        self.corr_updates = StepCounter()
        self._pending: Optional[torch.Tensor] = None

    @property
    def weight(self) -> torch.Tensor:
        """W_p, the predictor's d x d weight (set by :meth:`after_step`, never trained)."""
        return self.predictor.net.weight

    def forward(self, views, index=None) -> Forward:
        views = views[:2]
        hs, zs = zip(*(self.encoder(v) for v in views))
        if self.training:
            with torch.no_grad():
                self._pending = all_reduce_mean(second_moment([z.detach() for z in zs]))
        ps = [self.predictor(z) for z in zs]
        return Forward(z=list(zs), p=ps, targets=self.target_z(views), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        (p1, p2), (t1, t2) = out.p, out.targets
        return LossOut(byol_loss(p1, p2, t1, t2))

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        if self._pending is None:
            return
        rho = self.params.rho if int(self.corr_updates) > 0 else 0.0  # the first estimate is E_B[zzᵀ] itself
        self.corr.mul_(rho).add_(self._pending, alpha=1.0 - rho)
        self.corr_updates.add()
        self._pending = None
        if int(self.corr_updates) % self.params.freq == 0:
            self.weight.copy_(directpred_weight(self.corr, self.params.eps))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # as BYOL: −∂L/∂P_a = 2 T_b / M, basic part P_b.
        return GradFrame(anchor=("p", 0), basic=("p", 1), scale=out.z[0].shape[0] / 2.0)

    def param_groups(self):
        return [{"params": list(self.encoder.parameters()), "name": "encoder"}]
