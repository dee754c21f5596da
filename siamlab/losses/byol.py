"""BYOL's normalized MSE (BRIDGE eq. 1; Grill et al. 2020 eq. 2), symmetrized as L + L~."""
from __future__ import annotations

import torch

from .functional import l2n


def normalized_mse(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """mean_i ‖P_i − sg(T_i)‖² written as 2 − 2 P_i·sg(T_i) (equal for unit vectors, ZHANG eq. 1), so that
    with the norm held constant −∂/∂P_i = 2 T_i / M carries no dummy P_i term (ZHANG eq. 3)."""
    return (2.0 - 2.0 * (l2n(p) * l2n(t.detach())).sum(dim=-1)).mean()


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """BYOL: L = ‖P_1 − sg(T_2)‖² + ‖P_2 − sg(T_1)‖² (batch means), P online predictions, T target projections."""
    return normalized_mse(p1, t2) + normalized_mse(p2, t1)
