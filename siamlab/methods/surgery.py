"""Gradient surgery (ZHANG §3.3–3.4, §4; Tables 3–4, Fig. 6): train with o_e and/or r_e removed from the
extra gradient G_e. Each loss is −X_a·sg(target) with target = basic + the kept part of G_e
(see :mod:`siamlab.losses.surgery`), symmetrized over the two views.

``keep`` = "both" (T = B + G_e, the unmodified gradient), "o_e" (r_e removed), "r_e" (o_e removed) or
"none" (G_e removed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses.functional import l2n
from ..losses.surgery import KEEP, infonce_surgery_loss, surgery_target, target_loss
from .. import collectives
from ..models import PREDICTORS
from . import register
from .base import Forward, GradFrame, LossOut, Method, require
from .naive import PredictorOnEveryView, encode, encoder_predictor_groups, symmetric_frame
from .triplet import GlobalNegatives

_KEEP_HELP = "one of both, o_e, r_e, none (the parts of G_e kept)"


@dataclass
class KeepParams:
    keep: str = "both"

    def validate(self):
        require(self.keep in KEEP, "method.keep", self.keep, _KEEP_HELP)


@dataclass
class SimSiamSurgeryParams(KeepParams):
    predictor: str = "mlp"
    normalize_input: bool = False

    def validate(self):
        super().validate()
        require(self.predictor in PREDICTORS, "method.predictor", self.predictor, "one of " + ", ".join(PREDICTORS))


@dataclass
class InfoNCESurgeryParams(KeepParams):
    temperature: float = 0.2

    def validate(self):
        super().validate()
        require(self.temperature > 0, "method.temperature", self.temperature, "a number > 0")


def unit(x: torch.Tensor) -> torch.Tensor:
    """Normalized, detached copy: the stop-gradient side of a target."""
    return l2n(x.detach())


@register
class TripletSurgery(Method):
    name = "triplet_surgery"
    description = "Triplet −Z_a·sg(Z_b − Z_n), random negative, with o_e / r_e of G_e = −Z_n removable (ZHANG §3.3, Table 3)."
    reference = "ZHANG §3.3, Table 3"
    Params = KeepParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.negatives = GlobalNegatives()  # ZHANG §3.3's random negative, from the global batch

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        neg = self.negatives(zs[0].shape[0], zs[0].device)  # global-batch rows
        return Forward(z=zs, h=hs, index=index, extra={"neg_index": neg})

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        neg = out.extra["neg_index"]
        n1, n2 = unit(z1), unit(z2)
        t1 = surgery_target(n2 - collectives.gather_nograd(n2)[neg], n2, self.params.keep)  # B = Z_b, G_e = −Z_n
        t2 = surgery_target(n1 - collectives.gather_nograd(n1)[neg], n1, self.params.keep)
        return LossOut(0.5 * (target_loss(z1, t1) + target_loss(z2, t2)))

    def gradient_frame(self, out: Forward) -> GradFrame:
        return symmetric_frame(out, "z")


@register
class SimSiamSurgery(PredictorOnEveryView):
    name = "simsiam_surgery"
    description = "SimSiam −P_a·sg(P_b + G_e), G_e = Z_b − P_b, with o_e / r_e removable (ZHANG §3.4, Table 4)."
    reference = "ZHANG §3.4, eq. 4, Table 4"
    Params = SimSiamSurgeryParams

    def loss(self, out: Forward) -> LossOut:
        (z1, z2), (p1, p2) = out.z, out.p
        t1 = surgery_target(unit(z2), unit(p2), self.params.keep)  # T = Z_b, B = P_b
        t2 = surgery_target(unit(z1), unit(p1), self.params.keep)
        return LossOut(0.5 * (target_loss(p1, t1) + target_loss(p2, t2)))

    def gradient_frame(self, out: Forward) -> GradFrame:
        return symmetric_frame(out, "p")

    def param_groups(self):
        return encoder_predictor_groups(self, self.predictor)


@register
class InfoNCESurgery(Method):
    name = "infonce_surgery"
    description = "InfoNCE's anchor gradient Z_b − Σλ_i Z_i with o_e = −o_z or r_e = −Σλ_i r_i removable (ZHANG §4, Fig. 6)."
    reference = "ZHANG §4, A.7 eq. 6, Fig. 6"
    Params = InfoNCESurgeryParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        return LossOut(infonce_surgery_loss(out.z[0], out.z[1], p.temperature, p.keep))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = (Z_b + G_e) / (2Mτ): basic Z_b.
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=2.0 * out.z[0].shape[0] * self.params.temperature)
