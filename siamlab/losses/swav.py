"""SwAV (Caron et al. 2020, eqs. 1–3): swapped prediction of Sinkhorn-Knopp cluster codes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import gather, l2n


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes Q (B × K) for scores Zᵀc (B × K) of the whole (global) batch (SwAV eqs. 3–5, Alg. 1).

    Q ∝ exp(scores / ε), then ``iterations`` rounds of: every prototype gets total mass 1/K, every
    sample mass 1/B; finally multiplied by B so that each sample's code sums to 1 (an assignment).
    This is the official ``distributed_sinkhorn`` with its all-reduced sums taken on the gathered
    scores. The global maximum is subtracted before ``exp`` for range; the first normalization
    cancels that constant exactly.
    """
    q = torch.exp((scores - scores.max()) / epsilon).T  # K × B, as in the paper's notation
    k, b = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b
    return (q * b).T


def swapped_prediction(scores: list, codes: dict, temperature: float = 0.1) -> torch.Tensor:
    """SwAV eq. 1–2: for each view a that has codes q_a, the mean over the other views v of
    −Σ_k q_a,k log softmax(scores_v / τ)_k, averaged over samples, then over the views with codes."""
    total = 0.0
    for a, q in codes.items():
        others = [v for v in range(len(scores)) if v != a]
        sub = sum(-(q * F.log_softmax(scores[v] / temperature, dim=1)).sum(dim=1).mean() for v in others)
        total = total + sub / len(others)
    return total / len(codes)


def swav_loss(zs: list, prototypes: torch.Tensor, temperature: float = 0.1, epsilon: float = 0.05,
              sinkhorn_iterations: int = 3, assign_views: tuple = (0, 1)) -> torch.Tensor:
    """SwAV loss on the views' projector outputs ``zs`` and the K × d prototype matrix.

    scores_v = l2n(z_v) Cᵀ on the global batch (``gather``); codes of the views in ``assign_views``
    come from :func:`sinkhorn` on their detached scores; the loss is :func:`swapped_prediction`.
    Prototypes are used as given (the method keeps them on the unit sphere).
    """
    scores = [l2n(gather(z)) @ prototypes.T for z in zs]
    codes = {a: sinkhorn(scores[a].detach(), epsilon, sinkhorn_iterations) for a in assign_views}
    return swapped_prediction(scores, codes, temperature)
