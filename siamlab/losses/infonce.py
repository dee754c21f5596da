"""InfoNCE (ZHANG eq. 5, A.7; CENTER eq. 9) in SimCLR's NT-Xent form and with a set of shared negatives.

With λ_i = exp(Z_a·Z_i/τ) / Σ_j exp(Z_a·Z_j/τ) over the positive Z_0 = Z_b and the negatives, the
anchor's negative gradient is −∂L/∂Z_a = (Z_b − Σ_i λ_i Z_i)/τ (ZHANG eq. 6): basic part Z_b, extra
part G_e = −Σ_i λ_i Z_i. :func:`nt_xent_weights` returns these λ (rows sum to 1) for diagnostics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..collectives import rank
from .functional import gather, l2n


def _nt_xent_logits(z1: torch.Tensor, z2: torch.Tensor, tau: float):
    """Logits of the local anchors [z1; z2] against every view of the GLOBAL batch, self-similarity masked.

    Returns (logits [2n, 2·n·world], index of each anchor's positive). Keys are gathered with gradient,
    so each rank's loss is a function of the global tensors (SimCLR: 2N − 2 negatives per anchor).
    """
    n = z1.shape[0]
    anchors = l2n(torch.cat([z1, z2]))
    g1, g2 = gather(z1), gather(z2)
    keys = l2n(torch.cat([g1, g2]))
    big = g1.shape[0]
    local = torch.arange(n, device=z1.device) + rank() * n
    self_idx = torch.cat([local, local + big])
    pos_idx = torch.cat([local + big, local])
    logits = anchors @ keys.T / tau
    is_self = self_idx[:, None] == torch.arange(logits.shape[1], device=z1.device)
    return logits.masked_fill(is_self, float("-inf")), pos_idx


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's NT-Xent: mean over the 2n local anchors of ZHANG eq. 5,
    −log exp(Z_a·Z_b/τ) / Σ_{i ≠ a} exp(Z_a·Z_i/τ), the sum running over both views of the global batch."""
    logits, pos_idx = _nt_xent_logits(z1, z2, tau)
    return F.cross_entropy(logits, pos_idx)


def nt_xent_weights(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """ZHANG §4 / A.7 weights λ_i of every local anchor over all global candidates ([2n, 2·n·world];
    the anchor's own column is 0, its positive is Z_0 = Z_b; each row sums to 1)."""
    logits, _ = _nt_xent_logits(z1, z2, tau)
    return torch.softmax(logits, dim=1)


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, tau: float) -> torch.Tensor:
    """ZHANG eq. 5 with one positive key per query and shared negatives (MoCo's queue):
    mean_a −log exp(Q_a·K_a/τ) / (exp(Q_a·K_a/τ) + Σ_i exp(Q_a·N_i/τ)). No stop-gradient here."""
    logits = info_nce_logits(q, k, negatives, tau)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, tau: float) -> torch.Tensor:
    """[n, 1 + K] logits: column 0 the positive Q·K, then Q·N_i; all vectors l2-normalized."""
    qn, kn, nn_ = l2n(q), l2n(k), l2n(negatives)
    pos = (qn * kn).sum(dim=1, keepdim=True)
    return torch.cat([pos, qn @ nn_.T], dim=1) / tau


def weight_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy −Σ_i λ_i log λ_i of each row of InfoNCE weights (0·log 0 = 0); ZHANG Fig. 7a."""
    return -torch.special.xlogy(weights, weights).sum(dim=-1)
