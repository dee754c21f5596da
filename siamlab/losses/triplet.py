"""Triplet loss with a random negative and no clipping (ZHANG §3.3; CENTER eq. 6)."""
from __future__ import annotations

import torch

from .functional import l2n


def triplet_target(zb: torch.Tensor, zn: torch.Tensor) -> torch.Tensor:
    """The stop-gradient target Z_b − Z_n of ZHANG §3.3 (basic gradient Z_b, extra gradient G_e = −Z_n)."""
    return (l2n(zb) - l2n(zn)).detach()


def triplet_loss(z1: torch.Tensor, z2: torch.Tensor, neg1: torch.Tensor, neg2: torch.Tensor) -> torch.Tensor:
    """Symmetric ZHANG §3.3 triplet: L = −½ mean[ Z_a·sg(Z_b − Z_n) + Z_b·sg(Z_a − Z_n') ].

    ``neg1`` / ``neg2`` are the negatives of each anchor (rows of the batch, chosen by the caller).
    Only the anchor carries gradient, so −∂L/∂Z_a = (Z_b − Z_n)/(2M) (ZHANG §3.3).
    """
    left = -(l2n(z1) * triplet_target(z2, neg1)).sum(dim=-1).mean()
    right = -(l2n(z2) * triplet_target(z1, neg2)).sum(dim=-1).mean()
    return 0.5 * (left + right)
