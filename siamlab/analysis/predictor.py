"""Predictor diagnostics: bias vs center vector (ZHANG Table 6, A.8) and the linear predictor W_p
(BRIDGE Theorem 3.1, Figs. 3–4).

Predictors (siamlab.models.heads.Predictor) expose ``last_bias`` (a vector or None) and
``linear_weight`` (the effective d×d matrix W_p with p = W_p z (+ b), or None for non-linear kinds).
Matrix products stay in the weight's dtype (float32 in training: O(d³) work); norms and ratios are
returned as float64 0-dim tensors.
"""
from __future__ import annotations

from typing import Optional

import torch

from .metrics import center

_EPS = 1e-12


def bias_center_cosine(bias: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """cos(b_p, o_z), o_z the center of the normalized predictor inputs z (ZHANG Table 6; A.8 eq. 13
    predicts b_p = (1 − m)/m · o_z, hence a cosine near 1)."""
    o = center(z)
    b = bias.to(o.dtype)
    return (b @ o) / (b.norm() * o.norm()).clamp_min(_EPS)


def symmetry_gap(w: torch.Tensor) -> torch.Tensor:
    """‖W − Wᵀ‖_F/‖W‖_F: 0 for a symmetric W_p, 2 for an antisymmetric one, ≈ √2 for a random Gaussian one
    (BRIDGE Fig. 4a: W_p becomes symmetric during training)."""
    return ((w - w.T).norm() / w.norm().clamp_min(_EPS)).to(torch.float64)


def diagonal_dominance(w: torch.Tensor) -> torch.Tensor:
    """Share of W_p's squared Frobenius norm on its diagonal, Σ_i W_ii² / Σ_ij W_ij²: 1 for a diagonal
    W_p (BRIDGE Fig. 3: W_p → cI), about 1/d for a dense random one."""
    w = w.to(torch.float64)
    return torch.diagonal(w).pow(2).sum() / w.pow(2).sum().clamp_min(_EPS)


def eigenvalues(w: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of W_p (complex in general), sorted by decreasing real part (BRIDGE Fig. 4b)."""
    ev = torch.linalg.eigvals(w.to(torch.float64))
    return ev[torch.argsort(ev.real, descending=True)]


def feature_second_moment(z: torch.Tensor) -> torch.Tensor:
    """F Fᵀ = (1/n) Σ_i f_i f_iᵀ with F = [f_1, …, f_n]/√n the projector outputs (BRIDGE eq. 5, 14):
    the *uncentered* covariance of the raw (not normalized) features."""
    return z.T @ z / z.shape[0]


def wtw_fft_gap(w: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BRIDGE Theorem 3.1 (eq. 14, W_pᵀW_p → F Fᵀ): returns (rel, rel_fit) with
    rel = ‖W_pᵀW_p − F Fᵀ‖_F / ‖F Fᵀ‖_F and rel_fit the same after the best scalar c on W_pᵀW_p,
    c = ⟨W_pᵀW_p, F Fᵀ⟩/‖W_pᵀW_p‖² (the cosine loss leaves the scale of W_p free)."""
    wtw = w.T @ w
    fft = feature_second_moment(z.to(w.dtype))
    ref = fft.norm().to(torch.float64).clamp_min(_EPS)
    rel = (wtw - fft).norm().to(torch.float64) / ref
    c = (wtw * fft).sum() / wtw.pow(2).sum().clamp_min(_EPS)
    rel_fit = (c * wtw - fft).norm().to(torch.float64) / ref
    return rel, rel_fit


def predictor_matrices(w: Optional[torch.Tensor], z: Optional[torch.Tensor] = None) -> dict:
    """Heatmap-ready float32 CPU matrices: ``W_p``, ``WtW`` = W_pᵀW_p and (with z) ``FFt`` = F Fᵀ."""
    out = {}
    if w is not None:
        w = w.detach()
        out["W_p"] = w.float().cpu()
        out["WtW"] = (w.T @ w).float().cpu()
    if z is not None:
        out["FFt"] = feature_second_moment(z.detach().float()).cpu()
    return out
