"""SimCLR (Chen et al. 2020a): NT-Xent / InfoNCE over the global batch (ZHANG eq. 5-6, A.7)."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.infonce import nt_xent, nt_xent_weights, weight_entropy
from . import register
from .base import Forward, GradFrame, LossOut, Method, require


@dataclass
class SimCLRParams:
    tau: float = 0.2  # temperature; solo-learn's CIFAR default, which ZHANG A.7 uses (SimCLR's CIFAR runs: 0.5)

    def validate(self):
        require(self.tau > 0, "method.tau", self.tau, "a temperature > 0 (e.g. 0.2)")


@register
class SimCLR(Method):
    name = "simclr"
    description = "Contrastive InfoNCE / NT-Xent with 2N-2 negatives from the global batch (ZHANG eq. 5)."
    reference = "Chen et al. 2020a; ZHANG eq. 5-6, A.7"
    Params = SimCLRParams

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views[:2]))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        loss = nt_xent(z1, z2, self.params.tau)
        entropy = weight_entropy(nt_xent_weights(z1.detach(), z2.detach(), self.params.tau)).mean()
        return LossOut(loss, {"weight_entropy": entropy})

    def weights(self, out: Forward):
        """ZHANG §4 InfoNCE weights λ_i of every anchor (rows sum to 1), for diagnostics."""
        return nt_xent_weights(out.z[0], out.z[1], self.params.tau)

    def gradient_frame(self, out: Forward) -> GradFrame:
        # Z_a is the anchor of its own term and a key (positive for Z_b, negative for the rest) of the
        # others: −∂L/∂Z_a = [2 Z_b − Σ_j λ_aj Z_j − Σ_k λ_ka Z_k] / (2Mτ). Scale Mτ gives Z_b coefficient 1
        # and G_e = −½(Σ_j λ_aj Z_j + Σ_k λ_ka Z_k) (ZHANG eq. 6 / A.7, symmetrized).
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=out.z[0].shape[0] * self.params.tau)
