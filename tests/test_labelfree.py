"""RankMe, LiDAR and α-ReQ (siamlab/analysis/labelfree.py) against independent computations and the papers'
statements: hand-built spectra with a known entropy or exponent, a second formulation (LDA as scipy's
generalized eigenproblem, scatter matrices from numpy.cov, the weighted fit from its normal equations)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from siamlab.analysis import labelfree as LF


def entropy_rank_by_hand(values, eps: float) -> float:
    v = np.asarray(values, dtype=np.float64)
    p = v / v.sum() + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def with_singular_values(sigma, n: int, seed: int = 0) -> torch.Tensor:
    """An [n, d] matrix U diag(σ) Vᵀ with random orthonormal U, V: its singular values are exactly σ."""
    g = np.random.default_rng(seed)
    d = len(sigma)
    u, _ = np.linalg.qr(g.standard_normal((n, d)))
    v, _ = np.linalg.qr(g.standard_normal((d, d)))
    return torch.from_numpy(u @ np.diag(sigma) @ v.T)


def with_covariance_spectrum(lam, n: int, seed: int = 0) -> torch.Tensor:
    """[n, d] features whose covariance (N − 1) has exactly the eigenvalues ``lam``: orthonormal centered
    columns (QR of a centered matrix) scaled by √((n − 1)λ), rotated."""
    g = np.random.default_rng(seed)
    d = len(lam)
    a = g.standard_normal((n, d))
    q, _ = np.linalg.qr(a - a.mean(axis=0))
    r, _ = np.linalg.qr(g.standard_normal((d, d)))
    return torch.from_numpy(q @ np.diag(np.sqrt((n - 1) * np.asarray(lam))) @ r.T + 3.0)  # + an offset: centered away


# --- RankMe ------------------------------------------------------------------------------------
def test_rankme_of_a_hand_built_spectrum():
    sigma = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.0, 0.0])
    z = with_singular_values(sigma, n=40)
    assert LF.rankme(z) == pytest.approx(entropy_rank_by_hand(sigma, 1e-7), rel=1e-9)
    assert LF.RANKME_EPS == 1e-7  # Garrido et al. 2023


def test_rankme_paper_statements_rank_one_and_isotropic():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 1, generator=g), torch.randn(1, 64, generator=g)
    assert LF.rankme(a @ b) == pytest.approx(1.0, abs=1e-3)  # rank one: 1 (+ the ε terms)
    assert LF.rankme(torch.ones(300, 64) * 0.3) == pytest.approx(1.0, abs=1e-3)  # complete collapse to one vector
    equal = with_singular_values(np.full(32, 2.0), n=100)
    assert LF.rankme(equal) == pytest.approx(32.0, rel=1e-4)  # all σ equal: d
    iso = torch.randn(20000, 32, generator=g, dtype=torch.float64)
    assert 0.99 * 32 < LF.rankme(iso) <= 32.0 + 1e-3  # isotropic Gaussian, N ≫ d: ≈ d


def test_rankme_is_not_centered_and_is_invariant_to_rotation_and_scale():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 16, generator=g, dtype=torch.float64) * torch.linspace(0.1, 2, 16, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    assert LF.rankme(z @ q) == pytest.approx(LF.rankme(z), rel=1e-9)
    assert LF.rankme(7.0 * z) == pytest.approx(LF.rankme(z), rel=1e-9)
    assert LF.rankme(z + 50.0) < LF.rankme(z) / 2  # an offset dominates the uncentered matrix (the paper's Z)


def test_rankme_degenerate_inputs():
    assert LF.rankme(torch.full((10, 4), float("nan"))) is None
    assert LF.rankme(torch.zeros(10, 4)) is None  # no nonzero singular value
    assert LF.rankme(torch.zeros(0, 4)) is None
    assert LF.rankme(torch.randn(1, 8)) == pytest.approx(1.0, abs=1e-4)  # one sample: rank one


# --- LiDAR -------------------------------------------------------------------------------------
def lidar_by_scipy(e: np.ndarray, delta: float, eps: float) -> float:
    """A second formulation: Σ_b from numpy.cov of the class means, Σ_w the mean of the classes' numpy.cov,
    LDA as the generalized symmetric eigenproblem Σ_b v = λ Σ_w v (scipy.linalg.eigh)."""
    n, q, d = e.shape
    sb = np.cov(e.mean(axis=1), rowvar=False)  # 1/(n − 1)
    sw = np.mean([np.cov(e[i], rowvar=False) for i in range(n)], axis=0) + delta * np.eye(d)  # 1/(n(q − 1))
    lam = scipy.linalg.eigh(sb, sw, eigvals_only=True)
    return entropy_rank_by_hand(np.clip(lam, 0, None), eps)


def test_lidar_matches_the_generalized_eigenproblem():
    g = np.random.default_rng(2)
    e = g.standard_normal((60, 6, 10)) @ np.diag(np.linspace(0.2, 1.5, 10)) + g.standard_normal((60, 1, 10)) * 0.7
    ours = LF.lidar(torch.from_numpy(e))
    assert ours == pytest.approx(lidar_by_scipy(e, 1e-4, 1e-8), rel=1e-8)
    assert (LF.LIDAR_DELTA, LF.LIDAR_EPS) == (1e-4, 1e-8)  # Thilak et al. 2023
    lam = LF.lidar_eigenvalues(torch.from_numpy(e)).numpy()
    sb = np.cov(e.mean(axis=1), rowvar=False)
    sw = np.mean([np.cov(e[i], rowvar=False) for i in range(60)], axis=0) + 1e-4 * np.eye(10)
    assert np.allclose(np.sort(lam), scipy.linalg.eigh(sb, sw, eigvals_only=True), rtol=1e-8, atol=1e-10)


def test_lidar_is_invariant_to_invertible_linear_maps():
    """The LDA eigenvalues are those of the pencil (Σ_b, Σ_w), unchanged by e → A e + b (δ negligible)."""
    g = np.random.default_rng(3)
    e = g.standard_normal((80, 5, 8)) + g.standard_normal((80, 1, 8)) * np.linspace(0.1, 2, 8)
    a = g.standard_normal((8, 8)) + 3 * np.eye(8)
    base = LF.lidar(torch.from_numpy(e), delta=1e-12)
    assert LF.lidar(torch.from_numpy(e @ a.T + 4.0), delta=1e-12) == pytest.approx(base, rel=1e-6)


def test_lidar_isotropic_classes_give_d_and_means_on_a_line_give_one():
    d, a, b = 6, 2.0, 0.5
    eye = np.eye(d)
    means = np.concatenate([a * eye, -a * eye])  # 2d classes: Σ_b ∝ I, the grand mean 0
    within = np.stack([b * eye[i % d] for i in range(2 * d)])  # each direction twice: Σ_w ∝ I
    e = np.stack([means + within, means - within], axis=1)  # q = 2 views of every class
    assert LF.lidar(torch.from_numpy(e)) == pytest.approx(d, rel=1e-5)
    g = np.random.default_rng(4)
    line = g.standard_normal((50, 1, 1)) * np.ones((1, 1, d))  # class means along one direction
    e_line = line + 0.3 * g.standard_normal((50, 4, d))
    assert LF.lidar(torch.from_numpy(e_line)) == pytest.approx(1.0, abs=0.25)
    small = g.standard_normal((5, 3, 20))  # 5 classes: Σ_b has rank ≤ n − 1 = 4
    assert LF.lidar(torch.from_numpy(small)) <= 4.0 + 1e-3


def test_lidar_degenerate_inputs():
    g = torch.Generator().manual_seed(5)
    shared = torch.randn(1, 4, 8, generator=g).expand(30, 4, 8)  # every class has the same mean: Σ_b = 0
    assert LF.lidar(shared) is None
    assert LF.lidar(torch.randn(1, 4, 8)) is None  # one class
    assert LF.lidar(torch.randn(10, 1, 8)) is None  # one view
    bad = torch.randn(10, 3, 8)
    bad[2, 1, 3] = float("nan")
    assert LF.lidar(bad) is None
    assert LF.lidar(torch.zeros(10, 3, 8)) is None
    assert LF.lidar_metrics({"backbone": torch.randn(10, 3, 8, generator=g), "projector": shared}).keys() == {"lidar_backbone"}


# --- α-ReQ -------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.3])
def test_alpha_of_an_exact_power_law(alpha):
    lam = 4.0 * np.arange(1, 257, dtype=np.float64) ** -alpha
    assert LF.alpha_of_spectrum(torch.from_numpy(lam)) == pytest.approx(alpha, abs=1e-9)
    z = with_covariance_spectrum(lam, n=400)
    assert LF.alpha_req(z) == pytest.approx(alpha, abs=1e-7)


def test_alpha_is_the_weighted_least_squares_slope_over_11_to_100():
    """Normal equations of min Σ_i (1/i)(log λ_i − c + α log i)² over i = 11..100, solved by hand."""
    g = np.random.default_rng(6)
    lam = np.sort(np.exp(g.uniform(-6, 2, 256)))[::-1]
    i = np.arange(11, 101)
    x = np.stack([np.ones_like(i, dtype=float), -np.log(i)], axis=1)
    w = np.diag(1.0 / i)
    c, alpha = np.linalg.solve(x.T @ w @ x, x.T @ w @ np.log(lam[i - 1]))
    assert LF.alpha_of_spectrum(torch.from_numpy(lam.copy())) == pytest.approx(alpha, rel=1e-9)
    assert LF.ALPHA_FIT == (11, 100)
    flat = LF.alpha_of_spectrum(torch.ones(128, dtype=torch.float64))
    assert flat == pytest.approx(0.0, abs=1e-12)  # isotropic: no decay


def test_alpha_fit_range_for_short_spectra():
    assert LF.alpha_fit_range(2048) == (11, 100)
    assert LF.alpha_fit_range(64) == (11, 64)
    assert LF.alpha_fit_range(16) == (2, 16)  # fewer than 10 points from 11: from 2
    assert LF.alpha_fit_range(2) is None
    lam = np.arange(1, 17, dtype=np.float64) ** -1.7
    assert LF.alpha_of_spectrum(torch.from_numpy(lam)) == pytest.approx(1.7, abs=1e-9)
    # the covariance of N samples has at most N − 1 nonzero eigenvalues: the fit stops there
    lam = np.arange(1, 257, dtype=np.float64) ** -1.2
    lam[40:] = 0.0
    assert LF.alpha_of_spectrum(torch.from_numpy(lam), samples=41) == pytest.approx(1.2, abs=1e-9)


def test_alpha_of_collapsed_spectra():
    """Numerically zero eigenvalues (dead units, a collapsed output) leave the fit; one or two left: inf."""
    lam = np.zeros(256)
    lam[:3] = [3.0, 2.0, 1.0]
    assert LF.alpha_of_spectrum(torch.from_numpy(lam)) == pytest.approx(math.log(2) / math.log(1.5), rel=1e-9)
    lam[2] = 1e-12  # below λ_1·1e-9: rank two
    assert LF.alpha_of_spectrum(torch.from_numpy(lam)) == math.inf
    assert LF.alpha_req(torch.randn(100, 1) * torch.ones(1, 32)) == math.inf  # rank one (a line)
    dead = with_covariance_spectrum(np.arange(1, 61, dtype=np.float64) ** -1.3, n=300).numpy()
    dead = np.concatenate([dead, np.zeros((300, 4))], axis=1)  # four dead units
    assert LF.alpha_req(torch.from_numpy(dead)) == pytest.approx(1.3, abs=1e-6)


def test_alpha_degenerate_inputs():
    assert LF.alpha_req(torch.full((50, 20), float("nan"))) is None
    assert LF.alpha_req(torch.randn(1, 20)) is None  # one sample: no covariance
    assert LF.alpha_req(torch.ones(50, 20)) is None  # zero variance
    assert LF.alpha_req(torch.randn(50, 2)) is None  # two eigenvalues are not a fit
    assert LF.alpha_of_spectrum(torch.zeros(0)) is None


def test_selection_score_orders_higher_rank_and_alpha_near_one_first():
    assert LF.selection_score({"rankme_projector": 12.0}, "rankme_projector") == 12.0
    assert LF.selection_score({"lidar_backbone": 3.5}, "lidar_backbone") == 3.5
    near, far = ({"alpha_req_projector": a} for a in (1.1, 0.5))
    assert LF.selection_score(near, "alpha_req_projector") > LF.selection_score(far, "alpha_req_projector")
    assert LF.selection_score({"alpha_req_projector": math.inf}, "alpha_req_projector") is None
    assert LF.selection_score({"rankme_projector": "nan"}, "rankme_projector") is None  # the log's string form
    assert LF.selection_score({}, "rankme_projector") is None
