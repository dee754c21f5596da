"""VICReg (Bardes, Ponce & LeCun 2022): variance-invariance-covariance regularization."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.vicreg import vicreg_loss
from . import register
from .base import Forward, LossOut, Method, require


@dataclass
class VICRegParams:
    sim_coeff: float = 25.0  # λ, invariance
    std_coeff: float = 25.0  # μ, variance hinge
    cov_coeff: float = 1.0  # ν, covariance
    gamma: float = 1.0  # target standard deviation γ
    eps: float = 1e-4  # ε in sqrt(Var + ε)

    def validate(self):
        for name in ("sim_coeff", "std_coeff", "cov_coeff"):
            require(getattr(self, name) >= 0, f"method.{name}", getattr(self, name), "a number >= 0")
        require(self.gamma > 0, "method.gamma", self.gamma, "a number > 0")
        require(self.eps > 0, "method.eps", self.eps, "a number > 0")


@register
class VICReg(Method):
    """Two views, shared encoder, no predictor and no stop-gradient; loss on the first two views,
    variance and covariance over the global batch. Gradient frame: the default (no basic part)."""

    name = "vicreg"
    description = "VICReg: invariance MSE + variance hinge + covariance penalty (25/25/1)."
    reference = "Bardes et al. 2022 eqs. 1-6"
    Params = VICRegParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        loss, terms = vicreg_loss(out.z[0], out.z[1], p.sim_coeff, p.std_coeff, p.cov_coeff, p.gamma, p.eps,
                                  with_terms=True)
        return LossOut(loss, terms)
