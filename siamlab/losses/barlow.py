"""Barlow Twins (Zbontar et al. 2021, eq. 1; GEN eq. 2 / 12): redundancy reduction on the cross-correlation."""
from __future__ import annotations

import torch

from .decorrelation import off_diagonal
from .functional import gather


def standardize(x: torch.Tensor, unbiased: bool = False, eps: float = 1e-5) -> torch.Tensor:
    """(x − μ) / sqrt(σ² + eps) per column over the rows (the batch) of ``x``.

    ``unbiased=False`` is what ``BatchNorm1d(affine=False)`` does in training mode (Barlow Twins'
    normalization layer); ``unbiased=True`` divides the variance by N − 1 (BRIDGE eq. 18).
    """
    xc = x - x.mean(dim=0)
    var = xc.pow(2).sum(dim=0) / (x.shape[0] - (1 if unbiased else 0))
    return xc / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C = BN(z1)ᵀ BN(z2) / N over the global batch (the official code: ``bn(z1).T @ bn(z2)``, divided by
    the global batch size, summed over GPUs). C_ij is the correlation of dimension i of view 1 with
    dimension j of view 2."""
    a = standardize(gather(z1), eps=eps)
    b = standardize(gather(z2), eps=eps)
    return a.T @ b / a.shape[0]


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, off_diagonal_term: bool = True,
                      scale: float = 1.0, eps: float = 1e-5, with_terms: bool = False):
    """L = scale · [ Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij² ] (Zbontar et al. eq. 1; GEN eq. 2).

    C is :func:`cross_correlation` (batch-standardized, global batch). ``off_diagonal_term=False``
    keeps only the invariance term (CENTER §3.3 / Fig. 5). ``scale`` is the old official
    ``--scale-loss`` (0.024 there; the current official code has no scale, i.e. 1). Returns the loss,
    or ``(loss, {"on_diag", "off_diag"})`` with ``with_terms=True``.
    """
    c = cross_correlation(z1, z2, eps)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    loss = scale * (on_diag + lambd * off_diag) if off_diagonal_term else scale * on_diag
    if with_terms:
        return loss, {"on_diag": on_diag.detach(), "off_diag": off_diag.detach()}
    return loss
