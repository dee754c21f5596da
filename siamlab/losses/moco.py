"""MoCo v2 loss (He et al. 2020; Chen et al. 2020b): InfoNCE (ZHANG eq. 5) with a queue of keys as negatives."""
from __future__ import annotations

import torch

from .infonce import info_nce


def moco_loss(q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, queue: torch.Tensor,
              tau: float, symmetric: bool = False) -> torch.Tensor:
    """ℓ(q, k) = −log exp(Q·K/τ) / (exp(Q·K/τ) + Σ_j exp(Q·Queue_j/τ)), keys and queue stop-gradient.

    MoCo v2: ℓ(q1, k2). ``symmetric``: ½[ℓ(q1, k2) + ℓ(q2, k1)] (MoCo v3 / solo-learn's MoCo v2+).
    """
    queue = queue.detach()
    loss = info_nce(q1, k2.detach(), queue, tau)
    if not symmetric:
        return loss
    return 0.5 * (loss + info_nce(q2, k1.detach(), queue, tau))
