"""BN + MSE (ZHANG App. B, Fig. 9): no predictor, no stop-gradient, no l2-normalization.

The projector's final BN (ZHANG A.1, no affine parameters) removes the batch mean of z, a de-centering
that prevents collapse with a plain MSE between the views; the cosine loss's l2-normalization would
bring a mean back. Fig. 9: no collapse, below SimSiam.
"""
from __future__ import annotations

import torch

from . import register
from .base import Forward, GradFrame, LossOut, Method
from .naive import encode


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(1/(M·d)) Σ_i ‖a_i − b_i‖²: mean squared error over the batch and the dimensions, no normalization."""
    return (a - b).pow(2).mean()


@register
class BNMSE(Method):
    name = "bn_mse"
    description = "BN + MSE on raw z, no predictor or stop-gradient: the final BN de-centers (ZHANG App. B, Fig. 9)."
    reference = "ZHANG App. B, Fig. 9"

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        return LossOut(mse(out.z[0], out.z[1]))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # Not a cosine loss: −∂L/∂z_a = 2(z_b − z_a)/(M·d) on the raw z; no basic part in ZHANG's sense.
        z = out.z[0]
        return GradFrame(anchor=("z", 0), basic=None, scale=z.shape[0] * z.shape[1] / 2.0)
