"""VICReg (Bardes, Ponce & LeCun 2022, eqs. 1–6): variance, invariance and covariance terms."""
from __future__ import annotations

import torch

from .decorrelation import covariance_penalty
from .functional import gather


def variance_hinge(x: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z) = (1/D) Σ_j max(0, γ − sqrt(Var(z_j) + ε)), S = sqrt(Var + ε) with the
    unbiased variance over the batch (VICReg eqs. 1–2)."""
    std = torch.sqrt(x.var(dim=0, unbiased=True) + eps)
    return torch.relu(gamma - std).mean()


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4, with_terms: bool = False):
    """L = λ s(Z, Z') + μ [v(Z) + v(Z')]/2 + ν [c(Z) + c(Z')] (VICReg eq. 6 as in the official code).

    s = mean squared error over samples and dimensions (eq. 5); v = :func:`variance_hinge` (eq. 1);
    c = Σ_{i≠j} Cov_ij² / D (eqs. 3–4, :func:`~siamlab.losses.decorrelation.covariance_penalty`).
    The official code averages the two variance terms and sums the two covariance terms; so do we.
    All three are computed on the global batch (``gather``). Returns the loss, or
    ``(loss, {"inv", "var", "cov"})`` with ``with_terms=True``.
    """
    x, y = gather(z1), gather(z2)
    inv = (x - y).pow(2).mean()
    var = 0.5 * (variance_hinge(x, gamma, eps) + variance_hinge(y, gamma, eps))
    cov = covariance_penalty(x) + covariance_penalty(y)
    loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov
    if with_terms:
        return loss, {"inv": inv.detach(), "var": var.detach(), "cov": cov.detach()}
    return loss
