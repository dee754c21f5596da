"""Triplet with a random negative and no clipping (ZHANG §3.3, Table 3): L = −Z_a·sg(Z_b − Z_n)."""
from __future__ import annotations

import torch

from ..losses.triplet import triplet_loss
from . import register
from .base import Forward, GradFrame, LossOut, Method


def random_negatives(n: int, device=None, generator=None) -> torch.Tensor:
    """For each i a uniformly random j ≠ i in [0, n): i + U{1, n−1} mod n."""
    shift = torch.randint(1, n, (n,), device=device, generator=generator)
    return (torch.arange(n, device=device) + shift) % n


@register
class Triplet(Method):
    name = "triplet"
    description = "Triplet loss with a random in-batch negative, no clipping (ZHANG §3.3)."
    reference = "ZHANG §3.3, Table 3; CENTER eq. 6"
    Params = None  # the experiment varies only the surgery on G_e (ZHANG Table 3)

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views[:2]))
        n = zs[0].shape[0]
        negs = [random_negatives(n, zs[0].device), random_negatives(n, zs[0].device)]
        return Forward(z=list(zs), h=list(hs), index=index, extra={"neg_index": negs})

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        n1, n2 = out.extra["neg_index"]
        # Z_n is the positive view of another sample: Z_b[j] for anchor Z_a[i], Z_a[j'] for Z_b[i].
        return LossOut(triplet_loss(z1, z2, z2[n1], z1[n2]))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = (Z_b − Z_n)/(2M): basic Z_b, G_e = −Z_n (ZHANG §3.3).
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=2.0 * out.z[0].shape[0])
