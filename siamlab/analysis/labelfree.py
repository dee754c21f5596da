"""Label-free quality measures of a representation, as their papers define them: pure functions of tensors.

Each takes features computed without labels and returns a float, or None where the measure is undefined
(non-finite features, too few samples, no variance at all); none raises on such input. Computed in float64.

* **RankMe** (Garrido, Balestriero, Najman & LeCun 2023, "RankMe: Assessing the downstream performance of
  pretrained self-supervised representations by their rank", ICML; their eq. 1): with σ_k the singular
  values of the embedding matrix Z [N, d] (as it is: not centered) and ε = 1e-7,

      p_k = σ_k / ‖σ‖₁ + ε,     RankMe(Z) = exp(− Σ_{k=1}^{min(N, d)} p_k log p_k).

  1 for rank-one embeddings (a complete collapse to one vector), → d for isotropic ones; the paper reads
  a higher RankMe as a better representation for linear probing (it selects hyperparameters by it).

* **LiDAR** (Thilak, Huang, Saremi, Dinh, Goh, Susskind & Littwin 2023, "LiDAR: Sensing linear probing
  performance in joint embedding SSL architectures", ICLR 2024, §3): n images are n surrogate classes,
  each with q augmented views e_ij; μ_i = mean_j e_ij, μ = mean_i μ_i,

      Σ_b = 1/(n−1) Σ_i (μ_i − μ)(μ_i − μ)ᵀ,
      Σ_w = 1/(n(q−1)) Σ_i Σ_j (e_ij − μ_i)(e_ij − μ_i)ᵀ + δ I_d,        δ = 1e-4,
      Σ_lidar = Σ_w^{−1/2} Σ_b Σ_w^{−1/2},   λ its eigenvalues,  p_k = λ_k / ‖λ‖₁ + ε,  ε = 1e-8,
      LiDAR = exp(− Σ_k p_k log p_k).

  The paper uses n = 1000 images and q = 50 views (:data:`LIDAR_PAPER_N`, :data:`LIDAR_PAPER_Q`). LiDAR
  counts the directions that separate one image's views from another's (the SSL task's own classes) in
  units of the spread within an image's views; it is at most min(n − 1, d). Undefined (None) when every
  surrogate class has the same mean (Σ_b = 0: no direction separates them).

* **α-ReQ** (Agrawal, Mondal, Ghosh & Richards 2022, "α-ReQ: Assessing representation quality in
  self-supervised learning by measuring eigenspectrum decay", NeurIPS): the eigenvalues λ_1 ≥ λ_2 ≥ … of
  the feature covariance decay as a power law λ_i ∝ i^{−α}; α is the negative slope of a least-squares
  line through (log i, log λ_i) over i ∈ [11, 100], each point weighted 1/i (the fit range and weights of
  the authors' reference implementation, after Stringer et al. 2019). The paper finds the best linear
  probes for α near 1: smaller α means a flat (noise-like) spectrum, larger α a steep (low-rank) one.
  Where the spectrum is shorter (d, N − 1 or the count of numerically nonzero eigenvalues below 100) the
  range ends there; below 20 eigenvalues it starts at i = 2 (:func:`alpha_fit_range`); a spectrum of one
  or two nonzero eigenvalues falls faster than any power law: α = inf.

Use :func:`rankme` and :func:`alpha_req` on clean features (the engine: the test split at every
evaluation); :func:`lidar` needs the views (:func:`siamlab.eval.features.embed_views`).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..collectives import gather_nograd

RANKME_EPS = 1e-7  # Garrido et al. 2023
LIDAR_DELTA = 1e-4  # Thilak et al. 2023: Σ_w regularization
LIDAR_EPS = 1e-8  # Thilak et al. 2023: entropy
LIDAR_PAPER_N, LIDAR_PAPER_Q = 1000, 50  # Thilak et al. 2023: images (surrogate classes) and views per image
ALPHA_FIT = (11, 100)  # α-ReQ: eigenvalue indices (1-based, inclusive) of the power-law fit
ALPHA_ZERO = 1e-9  # eigenvalues at or below λ_1 · ALPHA_ZERO are numerically zero: left out of the fit


def _finite64(x: torch.Tensor) -> Optional[torch.Tensor]:
    x = x.detach().to(torch.float64)
    return x if x.numel() and bool(torch.isfinite(x).all()) else None


def entropy_rank(values: torch.Tensor, eps: float) -> Optional[float]:
    """exp(− Σ p_k log p_k) with p_k = v_k / ‖v‖₁ + ε: the smooth rank of RankMe and LiDAR (``values`` ≥ 0).
    None when every value is 0 (nothing to normalize)."""
    v = values.to(torch.float64).clamp_min(0.0)
    total = float(v.sum())
    if not total > 0 or not math.isfinite(total):
        return None
    p = v / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def rankme(z: torch.Tensor, eps: float = RANKME_EPS) -> Optional[float]:
    """RankMe of the embeddings ``z`` [N, d] (module docstring): 1 for rank one, ≈ d for isotropic ones.
    None for non-finite or all-zero embeddings."""
    x = _finite64(z)
    if x is None or x.ndim != 2:
        return None
    return entropy_rank(torch.linalg.svdvals(x), eps)


def lda_matrices(e: torch.Tensor, delta: float = LIDAR_DELTA) -> tuple:
    """(Σ_b, Σ_w) of LiDAR (module docstring) for views ``e`` [n, q, d]; Σ_w includes δ·I."""
    n, q, d = e.shape
    means = e.mean(dim=1)
    centered = means - means.mean(dim=0)
    within = (e - means[:, None, :]).reshape(n * q, d)
    sigma_b = centered.T @ centered / (n - 1)
    sigma_w = within.T @ within / (n * (q - 1)) + delta * torch.eye(d, dtype=e.dtype, device=e.device)
    return sigma_b, sigma_w


def lidar_eigenvalues(e: torch.Tensor, delta: float = LIDAR_DELTA) -> torch.Tensor:
    """Eigenvalues of Σ_w^{−1/2} Σ_b Σ_w^{−1/2} (whitening by the eigendecomposition of Σ_w)."""
    sigma_b, sigma_w = lda_matrices(e, delta)
    w, v = torch.linalg.eigh(sigma_w)
    inv_sqrt = (v / w.clamp_min(torch.finfo(w.dtype).tiny).sqrt()) @ v.T
    m = inv_sqrt @ sigma_b @ inv_sqrt
    return torch.linalg.eigvalsh((m + m.T) / 2)


def lidar(views: torch.Tensor, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS) -> Optional[float]:
    """LiDAR of ``views`` [n, q, d]: n surrogate classes (images) of q augmented views each (module
    docstring). None with fewer than 2 images or 2 views, non-finite values, or when all classes share
    one mean."""
    e = _finite64(views)
    if e is None or e.ndim != 3 or e.shape[0] < 2 or e.shape[1] < 2:
        return None
    return entropy_rank(lidar_eigenvalues(e, delta), eps)


def alpha_fit_range(count: int) -> Optional[tuple]:
    """The 1-based, inclusive eigenvalue indices α-ReQ fits over when ``count`` eigenvalues are usable:
    :data:`ALPHA_FIT` cut at ``count``; from i = 2 when fewer than 10 points would remain; None below 3
    eigenvalues (two points are not a fit)."""
    lo, hi = ALPHA_FIT
    hi = min(hi, count)
    if hi - lo + 1 < 10:
        lo = 2
    return (lo, hi) if count >= 3 else None


def alpha_of_spectrum(eig: torch.Tensor, samples: Optional[int] = None) -> Optional[float]:
    """α-ReQ's decay coefficient from covariance eigenvalues ``eig`` (any order). Usable eigenvalues: at most
    ``samples`` − 1 (the N the covariance was estimated from) and only those above λ_1·:data:`ALPHA_ZERO`
    (numerically zero in float32 features: dead units, a collapsed output). With fewer than 3 usable
    eigenvalues the spectrum ends faster than any power law: ``math.inf``. None when it is non-finite, all
    zero, or has room for fewer than 3 eigenvalues (d or N − 1 below 3)."""
    lam = _finite64(eig.flatten()) if eig.numel() else None
    if lam is None:
        return None
    lam = torch.sort(lam, descending=True).values.cpu().numpy()
    if not lam[0] > 0:
        return None
    room = lam.size if samples is None else min(lam.size, int(samples) - 1)
    if alpha_fit_range(room) is None:
        return None
    span = alpha_fit_range(min(room, int(np.sum(lam > lam[0] * ALPHA_ZERO))))
    if span is None:
        return math.inf
    idx = np.arange(span[0], span[1] + 1)
    slope, _ = np.polyfit(np.log(idx), np.log(lam[idx - 1]), 1, w=1.0 / np.sqrt(idx))  # polyfit squares w: 1/i
    return float(-slope)


def alpha_req(z: torch.Tensor) -> Optional[float]:
    """α-ReQ of features ``z`` [N, d]: the power-law decay of their covariance spectrum (module docstring)."""
    x = _finite64(z)
    if x is None or x.ndim != 2 or x.shape[0] < 2:
        return None
    xc = x - x.mean(dim=0)
    return alpha_of_spectrum(torch.linalg.eigvalsh(xc.T @ xc / (x.shape[0] - 1)), x.shape[0])


def lidar_metrics(views: dict) -> dict:
    """``{f"lidar_{name}": LiDAR}`` of each feature's views ``{name: [n, q, d]}``; undefined ones left out."""
    out = {f"lidar_{name}": lidar(v) for name, v in views.items()}
    return {k: v for k, v in out.items() if v is not None}


def selection_score(metrics: dict, key: str) -> Optional[float]:
    """How good an evaluation is by the label-free metric ``key`` (e.g. ``rankme_projector``), higher is
    better: RankMe and LiDAR as they are (both papers read more rank as better), α-ReQ as −|α − 1| (its
    paper finds the best linear probes for α near 1). None when ``metrics`` lacks a finite value."""
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    score = -abs(float(v) - 1.0) if key.startswith("alpha_req_") else float(v)
    return score if math.isfinite(score) else None


def batch_metrics(views: list) -> dict:
    """The live diagnostics' label-free keys for one training batch, ``views`` = the views' embeddings
    (each [B, d], view i of sample j in row j): ``rankme`` and ``alpha_req`` of view 0, and ``lidar`` with the
    B samples as surrogate classes of len(views) views each (needs two views or more); undefined ones left out.
    A batch caps RankMe at B and LiDAR at B − 1; the evaluation rows' values use more samples. Under
    torch.distributed the views are gathered over ranks first (every rank must call it, at the same steps)."""
    views = [gather_nograd(v.detach()) for v in views]
    out = {"rankme": rankme(views[0]), "alpha_req": alpha_req(views[0])}
    if len(views) >= 2:
        out["lidar"] = lidar(torch.stack([v.detach() for v in views], dim=1))
    return {k: v for k, v in out.items() if v is not None}
