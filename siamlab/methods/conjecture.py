"""Conjecture 1 probes (ZHANG §3.1, Fig. 4): train on a single gradient component of the dummy term Z_a.

conj_center:   L = −Z_a·sg(o_z)         expected to raise m_o (collapse)
conj_residual: L = −Z_a·sg(Z_a − o_z)   expected to raise m_r
o_z is the batch center of the normalized view; both views are anchors, the loss is their average.
"""
from __future__ import annotations

from ..losses.surgery import center_target, residual_target, target_loss
from . import register
from .base import Forward, GradFrame, LossOut, Method
from .naive import encode


class _ConjectureProbe(Method):
    target_fn = staticmethod(center_target)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        return LossOut(0.5 * (target_loss(z1, self.target_fn(z1)) + target_loss(z2, self.target_fn(z2))))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = target / (2M); no basic gradient.
        return GradFrame(anchor=("z", 0), basic=None, scale=2.0 * out.z[0].shape[0])


@register
class ConjectureCenter(_ConjectureProbe):
    name = "conj_center"
    description = "−Z_a·sg(o_z): the center component of the dummy gradient alone raises m_o (ZHANG Conjecture 1, Fig. 4)."
    reference = "ZHANG §3.1, Conjecture 1, Fig. 4"
    target_fn = staticmethod(center_target)


@register
class ConjectureResidual(_ConjectureProbe):
    name = "conj_residual"
    description = "−Z_a·sg(Z_a − o_z): the residual component of the dummy gradient alone raises m_r (ZHANG Conjecture 1, Fig. 4)."
    reference = "ZHANG §3.1, Conjecture 1, Fig. 4"
    target_fn = staticmethod(residual_target)
