"""Cosine-type losses on l2-normalized vectors (ZHANG eq. 1 and 2)."""
from __future__ import annotations

import torch

from .functional import l2n


def negative_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """−mean_i (a_i/‖a_i‖)·(b_i/‖b_i‖): ZHANG eq. 1, L_cosine = L_MSE on normalized vectors (up to −1).

    No stop-gradient here: callers pass ``b.detach()`` where the method stops the gradient.
    """
    return -(l2n(a) * l2n(b)).sum(dim=-1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetric SimSiam loss, ZHANG eq. 2 halved as in Chen & He:
    L = −½ [ P_a·sg(Z_b) + P_b·sg(Z_a) ] averaged over the batch."""
    return 0.5 * (negative_cosine(p1, z2.detach()) + negative_cosine(p2, z1.detach()))
