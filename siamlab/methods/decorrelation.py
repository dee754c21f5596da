"""Training with ZHANG's de-correlation regularizer (ZHANG §3.5, Fig. 5b; A.6), plus an optional invariance term."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.cosine import negative_cosine
from ..losses.decorrelation import decorrelation_loss
from . import register
from .base import Forward, LossOut, Method, require


@dataclass
class DecorrelationParams:
    invariance_weight: float = 0.0  # weight of −Z_a·Z_b (ZHANG eq. 1, no stop-gradient); 0 = de-correlation alone

    def validate(self):
        require(self.invariance_weight >= 0, "method.invariance_weight", self.invariance_weight, "a number >= 0")


@register
class Decorrelation(Method):
    """L = mean over views of L_decor(z_v) (ZHANG A.6) + w · (−Z_1·Z_2) (ZHANG eq. 1).

    ZHANG Fig. 5b trains with the de-correlation term alone after a collapse phase (a phase switch
    to this method). Gradient frame: the default (no basic part, scaled by the batch size).
    """

    name = "decorrelation"
    description = "ZHANG A.6 de-correlation loss on l2-normalized z, optionally plus a cosine invariance term."
    reference = "ZHANG §3.5, Fig. 5b, A.6 (Algorithm 6)"
    Params = DecorrelationParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        decor = sum(decorrelation_loss(z) for z in out.z) / len(out.z)
        terms = {"decor": decor.detach()}
        loss = decor
        if self.params.invariance_weight:
            inv = negative_cosine(out.z[0], out.z[1])
            loss = loss + self.params.invariance_weight * inv
            terms["inv"] = inv.detach()
        return LossOut(loss, terms)
