"""CENTER's simplified objective (CENTER §3.1 eq. 32): invariance plus a center-vector penalty, no predictor,
no stop-gradient."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.center import INVARIANCES, center_norm, center_simple_loss, invariance_loss
from . import register
from .base import Forward, GradFrame, LossOut, Method, require


@dataclass
class CenterParams:
    lambda_l: float = -1.0  # Lagrange multiplier λ_L of eq. 32 (the paper sets −1)
    invariance: str = "cosine"  # L_inv of eq. 2: cosine (−Z_a·Z_b) or mse (‖Z_a − Z_b‖²)

    def validate(self):
        require(self.invariance in INVARIANCES, "method.invariance", self.invariance, "one of " + ", ".join(INVARIANCES))


@register
class CenterSimple(Method):
    name = "center"
    description = "Invariance loss plus a penalty on the center-vector magnitude ||s|| (CENTER eq. 32)."
    reference = "CENTER §2.1 eq. 1-3, §3.1 eq. 32"
    Params = CenterParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views[:2]))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        p = self.params
        loss = center_simple_loss(z1, z2, p.lambda_l, p.invariance)
        terms = {"invariance": invariance_loss(z1, z2, p.invariance).detach(),
                 "center_norm": center_norm(z1, z2).detach()}
        return LossOut(loss, terms)

    def gradient_frame(self, out: Forward) -> GradFrame:
        # cosine: −∂L/∂Z_a = [Z_b + (λ_L/2)·s/‖s‖] / (2M), so G_e = (λ_L/2)·ŝ is a pure center term.
        # mse: −∂L/∂Z_a = [Z_b − Z_a + (λ_L/4)·ŝ] / M, the −Z_a part being ZHANG eq. 3's dummy term.
        m = out.z[0].shape[0]
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=2.0 * m if self.params.invariance == "cosine" else m)
