"""Barlow Twins (Zbontar et al. 2021): cross-correlation of batch-standardized z driven to the identity."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.barlow import barlow_twins_loss
from . import register
from .base import Forward, LossOut, Method, require


@dataclass
class BarlowParams:
    lambd: float = 5e-3  # weight of the off-diagonal (redundancy reduction) term, Zbontar et al. §2
    off_diagonal: bool = True  # False: invariance term only (CENTER §3.3 / Fig. 5)
    scale_loss: float = 1.0  # the old official --scale-loss (0.024 there); 1 = the current official code

    def validate(self):
        require(self.lambd >= 0, "method.lambd", self.lambd, "a number >= 0")
        require(self.scale_loss > 0, "method.scale_loss", self.scale_loss, "a number > 0")


@register
class BarlowTwins(Method):
    """Two views, shared encoder, no predictor and no stop-gradient; loss on the first two views.

    The batch standardization (BN without affine, official ``self.bn``) is part of the loss, on the
    global batch. Gradient frame: the default (on Z_a, no basic part, scaled by the batch size).
    """

    name = "barlow"
    description = "Barlow Twins: cross-correlation of standardized views pushed to I (λ off-diagonal)."
    reference = "Zbontar et al. 2021 eq. 1; GEN eq. 2; CENTER §3.3 (no off-diagonal)"
    Params = BarlowParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        loss, terms = barlow_twins_loss(out.z[0], out.z[1], lambd=p.lambd, off_diagonal_term=p.off_diagonal,
                                        scale=p.scale_loss, with_terms=True)
        return LossOut(loss, terms)
