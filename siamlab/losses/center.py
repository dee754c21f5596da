"""CENTER's simplified objective (CENTER eq. 32): invariance loss plus a penalty on the center vector s."""
from __future__ import annotations

import torch

from .functional import gather, l2n

INVARIANCES = ("cosine", "mse")


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """CENTER eq. 2 on normalized z: ``cosine`` −mean_i Z_a·Z_b, ``mse`` mean_i ‖Z_a − Z_b‖² (= 2 + 2·cosine).
    Gradient flows into both views (no stop-gradient, no predictor)."""
    if kind == "cosine":
        return -(l2n(z1) * l2n(z2)).sum(dim=-1).mean()
    return (l2n(z1) - l2n(z2)).pow(2).sum(dim=-1).mean()


def center_norm(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """‖s‖ with s = E_x E_ω[z/‖z‖] (CENTER eq. 1): the mean of the normalized views of the global batch."""
    return l2n(gather(torch.cat([z1, z2]))).mean(dim=0).norm()


def center_simple_loss(z1: torch.Tensor, z2: torch.Tensor, lambda_l: float = -1.0,
                       invariance: str = "cosine") -> torch.Tensor:
    """L_simple = 0.5 (L_inv − λ_L ‖s‖) (CENTER eq. 32); λ_L = −1 penalizes the center-vector magnitude."""
    return 0.5 * (invariance_loss(z1, z2, invariance) - lambda_l * center_norm(z1, z2))
