"""Collapse and de-correlation metrics of a batch of representations: pure functions of tensors.

Every function takes features ``z`` of shape [N, d] (raw, not normalized, unless a docstring says
otherwise), computes in float64 and returns a 0-dim tensor (so that a caller can stack many of them
and synchronize once) or, for spectra, a vector. Nothing here detaches: the A.6 covariance term is
differentiated by :mod:`siamlab.analysis.gradients`; callers wrap the rest in ``torch.no_grad()``.

Notation (ZHANG §3): Z = z/‖z‖ (l2-normalized), center o = (1/N) Σ_i Z_i (the mini-batch estimate of
E[Z]), residuals r_i = Z_i − o.

* m_o = ‖o‖/‖Z‖ = ‖o‖, since ‖Z_i‖ = 1 (ZHANG §3.1). This is also CENTER's ‖s‖ (CENTER eq. 1, its
  mini-batch estimate), so :func:`center_norm` and :func:`m_o` are the same quantity.
* m_r: ZHANG §3.1 defines ‖r‖/‖z‖ per sample; we aggregate by the **mean over samples** of ‖r_i‖.
  Because the r_i sum to zero, (1/N) Σ‖r_i‖² = 1 − m_o² exactly, so the root-mean-square m_r is
  √(1 − m_o²) and the mean m_r reported here is ≤ that value (equal when all ‖r_i‖ are equal).
* Std (Chen & He 2021): the mean over dimensions of the per-dimension standard deviation (unbiased,
  N − 1) of Z. For Z uniform on the sphere it is ≈ 1/√d, so ``std_scaled`` = √d·std is ≈ 1 for
  isotropic outputs and 0 for a collapsed (constant) output.
"""
from __future__ import annotations

import math

import torch

from ..losses.functional import l2n


def unit(z: torch.Tensor) -> torch.Tensor:
    """Z = z/‖z‖ row-wise, in float64 (ZHANG §2, eq. 1)."""
    return l2n(z.to(torch.float64))


def std_of_normalized(z: torch.Tensor) -> torch.Tensor:
    """Chen & He's collapse indicator: mean over dims of the per-dim std (N − 1) of Z = z/‖z‖."""
    return unit(z).std(dim=0).mean()


def std_scaled(z: torch.Tensor) -> torch.Tensor:
    """√d · :func:`std_of_normalized`: ≈ 1 for outputs spread isotropically, 0 when collapsed."""
    return std_of_normalized(z) * math.sqrt(z.shape[1])


def center(z: torch.Tensor) -> torch.Tensor:
    """o = mean_i Z_i, the mini-batch center vector (ZHANG §3; CENTER eq. 1)."""
    return unit(z).mean(dim=0)


def residuals(z: torch.Tensor) -> torch.Tensor:
    """r_i = Z_i − o (ZHANG §3), [N, d]."""
    zn = unit(z)
    return zn - zn.mean(dim=0)


def center_norm(z: torch.Tensor) -> torch.Tensor:
    """‖o‖ = ‖mean_i z_i/‖z_i‖‖: CENTER's ‖s‖ (eq. 1) estimated on the batch; equal to m_o."""
    return center(z).norm()


def m_o(z: torch.Tensor) -> torch.Tensor:
    """m_o = ‖o‖/‖Z‖ = ‖o‖ (ZHANG §3.1): 1 when collapsed, ≈ 0 for centered outputs."""
    return center_norm(z)


def m_r(z: torch.Tensor) -> torch.Tensor:
    """m_r = mean over samples of ‖r_i‖/‖Z_i‖ = mean_i ‖r_i‖ (ZHANG §3.1; aggregation: module docstring)."""
    return residuals(z).norm(dim=1).mean()


def covariance_term(z: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """ZHANG A.6 (Algorithm 6): Σ_{i≠j} C_ij² / d with C = Z_cᵀ Z_c / (N − 1), Z_c = Z − mean(Z).

    Z is the l2-normalized representation (ZHANG's notation) unless ``normalize=False``.
    Differentiable: its negative gradient on Z is the de-correlation direction of ZHANG Fig. 5c.
    Computed as (‖C‖²_F − Σ_i C_ii²)/d, with ‖Z_cᵀZ_c‖_F = ‖Z_c Z_cᵀ‖_F so that the Gram matrix is
    min(N, d)² (N² d instead of N d² work when the batch is smaller than the dimension).
    """
    x = unit(z) if normalize else z.to(torch.float64)
    n, d = x.shape
    xc = x - x.mean(dim=0)
    gram = xc @ xc.T if n < d else xc.T @ xc
    diag_sq = xc.pow(2).sum(dim=0).pow(2).sum()  # Σ_i (Z_cᵀZ_c)_ii²
    return (gram.pow(2).sum() - diag_sq) / ((n - 1) ** 2 * d)


def correlation_matrix(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation of the feature dimensions over the batch, [d, d] (BRIDGE Fig. 1's Σ).

    A dead dimension (zero variance) gets an all-zero row and column, including a 0 on the diagonal,
    so it counts against ‖Σ − I‖² instead of producing NaN.
    """
    x = z.to(torch.float64)
    xc = x - x.mean(dim=0)
    cov = xc.T @ xc / (x.shape[0] - 1)
    var = torch.diagonal(cov)
    return cov / torch.sqrt(torch.outer(var, var)).clamp_min(eps)


def sigma_minus_identity(z: torch.Tensor) -> torch.Tensor:
    """‖Σ − I‖²_F / d with Σ the correlation matrix of the raw features (BRIDGE Fig. 1, §5.2).

    Normalization: divided by d, i.e. the mean over dimensions of the squared correlations of one
    dimension with all others (0 for decorrelated features; d − 1 for d identical dimensions).
    """
    c = correlation_matrix(z)
    eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    return (c - eye).pow(2).sum() / c.shape[0]


def gen_lambda(z: torch.Tensor) -> torch.Tensor:
    """Λ = E[f fᵀ] (GEN eq. 8, above Theorem 2) with f = √d·Z on the sphere of radius √d (GEN §4.1),
    i.e. Λ = (d/N) Σ_i Z_i Z_iᵀ: the *uncentered* second moment, trace d."""
    zn = unit(z)
    n, d = zn.shape
    return zn.T @ zn * (d / n)


def l_cor(z: torch.Tensor) -> torch.Tensor:
    """L_cor = ‖Λ − I_d‖²_F (GEN eq. 8) with Λ from :func:`gen_lambda`."""
    lam = gen_lambda(z)
    eye = torch.eye(lam.shape[0], dtype=lam.dtype, device=lam.device)
    return (lam - eye).pow(2).sum()


def l_bound(lcor, d: int, num_classes: int):
    """L_bound = 2/d² · L_cor + (K − d)/d² (GEN eq. 11); K = number of (latent) classes."""
    return 2.0 * lcor / d**2 + (num_classes - d) / d**2


def covariance_spectrum(z: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending, clipped at 0) of the covariance (N − 1) of the raw features."""
    x = z.to(torch.float64)
    xc = x - x.mean(dim=0)
    eig = torch.linalg.eigvalsh(xc.T @ xc / (x.shape[0] - 1))
    return eig.flip(0).clamp_min(0.0)


def effective_rank(z: torch.Tensor) -> torch.Tensor:
    """Roy & Vetterli (2007) effective rank of the centered feature matrix: exp(H(p)), p_k = σ_k/Σσ,
    σ_k its singular values (= √((N−1)·eigenvalue_k) of the covariance). 1 for rank one, d for isotropic."""
    return effective_rank_of_spectrum(covariance_spectrum(z))


def effective_rank_of_spectrum(eig: torch.Tensor) -> torch.Tensor:
    """:func:`effective_rank` from covariance eigenvalues ``eig`` (the singular values are ∝ √eig)."""
    s = eig.clamp_min(0.0).sqrt()
    p = s / s.sum().clamp_min(1e-300)
    return torch.exp(torch.special.entr(p).sum())


def alignment(za: torch.Tensor, zb: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola (2020) alignment: mean_i ‖Z_a,i − Z_b,i‖^α over positive pairs (α = 2)."""
    return (unit(za) - unit(zb)).norm(dim=1).pow(alpha).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola (2020) uniformity: log mean_{i≠j} exp(−t‖Z_i − Z_j‖²) (t = 2; ≤ 0, lower = more uniform)."""
    zn = unit(z)
    n = zn.shape[0]
    sq = (2.0 - 2.0 * zn @ zn.T).clamp_min(0.0)  # ‖a − b‖² = 2 − 2a·b for unit vectors
    off = ~torch.eye(n, dtype=torch.bool, device=zn.device)
    return torch.logsumexp(-t * sq[off], dim=0) - math.log(n * (n - 1))


def interclass_cos2(z: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Left side of GEN Theorem 2 divided by d²: Σ_{i≠j} p_i p_j (μ_iᵀμ_j)² / (d²(1 − Σ p_i²)),
    with μ_k the class means of f = √d·Z, so (μ_iᵀμ_j)²/d² = (mean Z_i · mean Z_j)². Absent classes are skipped."""
    zn = unit(z)
    labels = labels.to(zn.device).long()
    counts = torch.bincount(labels, minlength=num_classes).to(zn.dtype)
    sums = torch.zeros(num_classes, zn.shape[1], dtype=zn.dtype, device=zn.device).index_add_(0, labels, zn)
    present = counts > 0
    mu = sums[present] / counts[present, None]
    p = counts[present] / counts.sum()
    gram2 = (mu @ mu.T).pow(2)
    pp = torch.outer(p, p)
    pp = pp - torch.diag(torch.diagonal(pp))
    return (pp * gram2).sum() / (1.0 - p.pow(2).sum()).clamp_min(1e-300)
