"""Losses of method zoo part B, each against an independent computation (numpy loops, hand values,
a second formulation) and float64 finite differences (torch.autograd.gradcheck)."""
import itertools

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from siamlab.errors import ConfigError
from siamlab.losses.barlow import barlow_twins_loss, cross_correlation, standardize
from siamlab.losses.bridge import bridge_loss, covariance_term
from siamlab.losses.decorrelation import covariance_penalty, decorrelation_loss, off_diagonal
from siamlab.losses.swav import sinkhorn, swapped_prediction, swav_loss
from siamlab.losses.vicreg import variance_hinge, vicreg_loss
from siamlab.losses.wmse import whiten, whitening_matrix, wmse_loss


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def leaf(*shape, seed=0):
    return rand(*shape, seed=seed).requires_grad_()


# ----------------------------------------------------------------------------- numpy references
def np_cov(x):
    """Unbiased covariance by an explicit double loop over dimensions."""
    n, d = x.shape
    mu = x.mean(0)
    return np.array([[sum((x[b, i] - mu[i]) * (x[b, j] - mu[j]) for b in range(n)) / (n - 1)
                      for j in range(d)] for i in range(d)])


def np_offdiag_sq(m):
    d = m.shape[0]
    return sum(m[i, j] ** 2 for i in range(d) for j in range(d) if i != j)


# ----------------------------------------------------------------------------- decorrelation (ZHANG A.6)
def test_decorrelation_hand_example():
    """Z rows (1,0), (0,1), (0.6,0.8) (unit norm): centred x = (7,−8,1)/15, y = (−3,2,1)/5,
    Σxy = −36/75, Cov_01 = −0.24, loss = 2 · 0.24² / 2 = 0.0576 (Algorithm 6 by hand)."""
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    assert decorrelation_loss(z).item() == pytest.approx(0.0576, abs=1e-12)
    scaled = z * torch.tensor([[3.0], [0.5], [7.0]], dtype=torch.float64)  # normalization is inside
    assert decorrelation_loss(scaled).item() == pytest.approx(0.0576, abs=1e-12)


def test_decorrelation_matches_loop():
    z = rand(9, 5)
    zn = (z / z.norm(dim=1, keepdim=True)).numpy()
    expect = np_offdiag_sq(np_cov(zn)) / 5
    assert decorrelation_loss(z).item() == pytest.approx(expect, rel=1e-10)


def test_off_diagonal_entries():
    m = torch.arange(16.0).view(4, 4)
    expect = [m[i, j].item() for i in range(4) for j in range(4) if i != j]
    assert off_diagonal(m).tolist() == expect


def test_decorrelation_gradcheck():
    assert gradcheck(decorrelation_loss, (leaf(7, 4),))


# ----------------------------------------------------------------------------- Barlow Twins
def np_barlow(z1, z2, lambd, eps):
    def bn(x):
        return (x - x.mean(0)) / np.sqrt(x.var(0) + eps)  # biased variance, as BatchNorm1d in training
    a, b = bn(z1), bn(z2)
    n, d = a.shape
    c = np.array([[sum(a[s, i] * b[s, j] for s in range(n)) / n for j in range(d)] for i in range(d)])
    return sum((1 - c[i, i]) ** 2 for i in range(d)) + lambd * np_offdiag_sq(c)


def test_barlow_zero_at_identity_cross_correlation():
    """Hadamard columns have mean 0, biased variance 1 and are orthogonal: C = I exactly, loss 0."""
    h = torch.tensor([[1, 1, 1], [1, -1, 1], [-1, 1, -1], [-1, -1, -1.0]], dtype=torch.float64)
    h = h[:, :2]
    assert torch.allclose(cross_correlation(h, h, eps=0.0), torch.eye(2, dtype=torch.float64))
    assert barlow_twins_loss(h, h, lambd=5e-3, eps=0.0).item() == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("lambd", [5e-3, 0.7])
def test_barlow_matches_loop(lambd):
    z1, z2 = rand(10, 4, seed=1), rand(10, 4, seed=2)
    expect = np_barlow(z1.numpy(), z2.numpy(), lambd, 1e-5)
    assert barlow_twins_loss(z1, z2, lambd=lambd).item() == pytest.approx(expect, rel=1e-10)


def test_barlow_lambda_one_is_frobenius_distance():
    """GEN eq. 13: with λ = 1 the loss is ‖C − I‖²_F."""
    z1, z2 = rand(12, 3, seed=3), rand(12, 3, seed=4)
    c = cross_correlation(z1, z2)
    expect = (c - torch.eye(3, dtype=torch.float64)).pow(2).sum()
    assert barlow_twins_loss(z1, z2, lambd=1.0).item() == pytest.approx(expect.item(), rel=1e-12)


def test_barlow_without_off_diagonal_and_scale():
    z1, z2 = rand(10, 4, seed=5), rand(10, 4, seed=6)
    on_only = np_barlow(z1.numpy(), z2.numpy(), 0.0, 1e-5)
    assert barlow_twins_loss(z1, z2, lambd=3.0, off_diagonal_term=False).item() == pytest.approx(on_only, rel=1e-10)
    full = barlow_twins_loss(z1, z2)
    assert barlow_twins_loss(z1, z2, scale=0.024).item() == pytest.approx(0.024 * full.item(), rel=1e-12)


def test_barlow_gradcheck():
    assert gradcheck(lambda a, b: barlow_twins_loss(a, b, lambd=0.3), (leaf(8, 3, seed=1), leaf(8, 3, seed=2)))


# ----------------------------------------------------------------------------- VICReg
def np_vicreg(x, y, sim, std, cov, gamma, eps):
    n, d = x.shape
    inv = ((x - y) ** 2).sum() / (n * d)

    def hinge(a):
        return sum(max(0.0, gamma - np.sqrt(np.var(a[:, j], ddof=1) + eps)) for j in range(d)) / d

    def c(a):
        return np_offdiag_sq(np_cov(a)) / d
    return sim * inv + std * (hinge(x) + hinge(y)) / 2 + cov * (c(x) + c(y))


def test_variance_hinge_zero_above_gamma_and_hand_value():
    x = 3.0 * rand(64, 5)  # std ≈ 3 > γ = 1 in every dimension
    assert variance_hinge(x).item() == 0.0
    const = torch.ones(10, 2, dtype=torch.float64)  # Var = 0: hinge = γ − sqrt(ε) in both dimensions
    assert variance_hinge(const, gamma=1.0, eps=1e-4).item() == pytest.approx(1 - 1e-2, abs=1e-12)


def test_covariance_penalty_matches_loop():
    x = rand(11, 4, seed=7)
    assert covariance_penalty(x).item() == pytest.approx(np_offdiag_sq(np_cov(x.numpy())) / 4, rel=1e-10)


def test_vicreg_matches_reference():
    x, y = 0.5 * rand(16, 4, seed=8), 0.5 * rand(16, 4, seed=9)
    expect = np_vicreg(x.numpy(), y.numpy(), 25.0, 25.0, 1.0, 1.0, 1e-4)
    loss, terms = vicreg_loss(x, y, with_terms=True)
    assert loss.item() == pytest.approx(expect, rel=1e-10)
    assert terms["var"].item() > 0  # std ≈ 0.5 < γ: the hinge is active


def test_vicreg_gradcheck():
    assert gradcheck(lambda a, b: vicreg_loss(a, b), (leaf(10, 3, seed=10) * 0.5, leaf(10, 3, seed=11) * 0.5))


# ----------------------------------------------------------------------------- SwAV
def np_sinkhorn_log(scores, eps, iters):
    """Log-domain Sinkhorn: log Q = S/ε + a_k + b_j with alternating marginal fits (independent form)."""
    b_, k_ = scores.shape
    logq = scores.T / eps  # K × B
    logq = logq - np.log(np.exp(logq).sum())
    for _ in range(iters):
        logq = logq - np.log(np.exp(logq).sum(1, keepdims=True)) - np.log(k_)
        logq = logq - np.log(np.exp(logq).sum(0, keepdims=True)) - np.log(b_)
    return (np.exp(logq) * b_).T


def test_sinkhorn_marginals():
    """Each sample's code sums to 1 (official final ``Q *= B``); after enough iterations every
    prototype receives B/K of the mass (equipartition, SwAV eq. 4)."""
    s = torch.tanh(rand(24, 6, seed=12))
    q3 = sinkhorn(s, 0.05, 3)
    assert torch.allclose(q3.sum(1), torch.ones(24, dtype=torch.float64), atol=1e-12)
    q = sinkhorn(s, 0.5, 500)
    assert torch.allclose(q.sum(0), torch.full((6,), 24 / 6, dtype=torch.float64), atol=1e-8)
    assert (q >= 0).all()


def test_sinkhorn_matches_log_domain_and_is_shift_invariant():
    s = torch.tanh(rand(16, 5, seed=13))
    expect = np_sinkhorn_log(s.numpy(), 0.05, 3)
    assert np.allclose(sinkhorn(s, 0.05, 3).numpy(), expect, atol=1e-10)
    assert torch.allclose(sinkhorn(s + 0.3, 0.05, 3), sinkhorn(s, 0.05, 3), atol=1e-12)


def test_swapped_prediction_matches_loop():
    scores = [rand(5, 4, seed=s) for s in (14, 15, 16)]
    codes = {0: torch.softmax(rand(5, 4, seed=17), 1), 1: torch.softmax(rand(5, 4, seed=18), 1)}
    t = 0.1

    def ce(q, x):
        p = np.exp(x / t) / np.exp(x / t).sum(1, keepdims=True)
        return -np.mean([sum(q[b, k] * np.log(p[b, k]) for k in range(4)) for b in range(5)])
    s = [x.numpy() for x in scores]
    l0 = (ce(codes[0].numpy(), s[1]) + ce(codes[0].numpy(), s[2])) / 2
    l1 = (ce(codes[1].numpy(), s[0]) + ce(codes[1].numpy(), s[2])) / 2
    assert swapped_prediction(scores, codes, t).item() == pytest.approx((l0 + l1) / 2, rel=1e-10)


def test_swapped_prediction_gradcheck():
    codes = {0: torch.softmax(rand(6, 4, seed=19), 1), 1: torch.softmax(rand(6, 4, seed=20), 1)}
    assert gradcheck(lambda a, b: swapped_prediction([a, b], codes, 0.1), (leaf(6, 4, seed=21), leaf(6, 4, seed=22)))


def test_swav_loss_composes_normalized_scores_and_codes():
    z1, z2 = rand(12, 5, seed=23), rand(12, 5, seed=24)
    c = rand(7, 5, seed=25)
    c = c / c.norm(dim=1, keepdim=True)
    s = [(z / z.norm(dim=1, keepdim=True)) @ c.T for z in (z1, z2)]
    codes = {a: torch.from_numpy(np_sinkhorn_log(s[a].numpy(), 0.05, 3)) for a in (0, 1)}
    expect = swapped_prediction(s, codes, 0.1)
    assert swav_loss([z1, z2], c).item() == pytest.approx(expect.item(), rel=1e-10)


# ----------------------------------------------------------------------------- W-MSE
@pytest.mark.parametrize("kind", ["cholesky", "zca"])
def test_whitening_gives_identity_covariance(kind):
    x = rand(40, 4, seed=26) @ rand(4, 4, seed=27) + 3.0
    w = whiten(x, kind=kind)
    assert torch.allclose(w.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(w.T @ w / 39, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_whitening_matrix_shapes():
    x = rand(30, 4, seed=28) @ rand(4, 4, seed=29)
    cov = torch.cov(x.T)
    lower = whitening_matrix(cov, "cholesky")
    assert torch.equal(lower, torch.tril(lower))
    zca = whitening_matrix(cov, "zca")
    assert torch.allclose(zca, zca.T, atol=1e-10)
    assert torch.allclose(zca @ zca, torch.linalg.inv(cov), atol=1e-8)


def np_wmse_whole_batch(views):
    """Cholesky whitening with numpy (W = inv(L)), then mean over pairs of 2 − 2 cos."""
    white = []
    for v in views:
        xc = v - v.mean(0)
        cov = xc.T @ xc / (len(v) - 1)
        white.append(xc @ np.linalg.inv(np.linalg.cholesky(cov)).T)
    dists = []
    for a, b in itertools.combinations(white, 2):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        dists.append(np.mean(2 - 2 * (a * b).sum(1)))
    return np.mean(dists)


def test_wmse_matches_numpy_whole_batch():
    views = [rand(20, 3, seed=s) for s in (30, 31, 32)]
    expect = np_wmse_whole_batch([v.numpy() for v in views])
    assert wmse_loss(views, w_size=0).item() == pytest.approx(expect, rel=1e-10)


def test_wmse_sub_batches_follow_the_seeded_permutation():
    views = [rand(24, 3, seed=s) for s in (33, 34)]
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(5))
    parts = [np_wmse_whole_batch([v[idx].numpy() for v in views]) for idx in perm.view(-1, 8)]
    assert wmse_loss(views, w_size=8, seed=5).item() == pytest.approx(np.mean(parts), rel=1e-10)


def test_wmse_identical_views_zero_and_errors():
    v = rand(16, 3, seed=35)
    assert wmse_loss([v, v.clone()], w_size=0).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="method.w_size"):
        wmse_loss([v, v], w_size=5)
    with pytest.raises(ConfigError, match="embedding dimension"):
        wmse_loss([v, v], w_size=2)


@pytest.mark.parametrize("kind", ["cholesky", "zca"])
def test_wmse_gradcheck(kind):
    assert gradcheck(lambda a, b: wmse_loss([a, b], w_size=0, kind=kind), (leaf(12, 3, seed=36), leaf(12, 3, seed=37)))


# ----------------------------------------------------------------------------- BRIDGE
def np_bridge_oneway(f1, f2, w, c_inv, c_cov, k):
    """BRIDGE eq. 19 in the paper's notation (F = [f_1 … f_n]/√n, d × n; F¹ = (1/√k)[F_1 … F_k]), in the
    units of the authors' code: the invariance norm divided by d, the k partition terms averaged."""
    n, d = f1.shape
    F1, F2 = f1.T / np.sqrt(n), f2.T / np.sqrt(n)
    inv = np.linalg.norm(w @ F1 - F2, "fro") ** 2
    m = n // k
    cov = 0.0
    for i in range(k):
        Fi = np.sqrt(k) * F1[:, i * m:(i + 1) * m]
        cov += np.linalg.norm(w.T @ w - w @ Fi @ Fi.T @ w.T, "fro") ** 2
    return c_inv * inv / d + c_cov / d * cov / k


def np_std(x):
    return (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1))  # eq. 18, unbiased σ


@pytest.mark.parametrize("k", [1, 2, 4])
def test_bridge_matches_paper_notation(k):
    z1, z2, w = rand(8, 3, seed=38), rand(8, 3, seed=39), rand(3, 3, seed=40)
    f1, f2 = np_std(z1.numpy()), np_std(z2.numpy())
    expect = np_bridge_oneway(f1, f2, w.numpy(), 25.0, 1.0, k) + np_bridge_oneway(f2, f1, w.numpy(), 25.0, 1.0, k)
    got = bridge_loss(z1, z2, w, c_inv=25.0, c_cov=1.0, k=k, eps=0.0)
    assert got.item() == pytest.approx(expect, rel=1e-10)
    one_way = bridge_loss(z1, z2, w, k=k, symmetric=False, standardize_features=False)
    assert one_way.item() == pytest.approx(np_bridge_oneway(z1.numpy(), z2.numpy(), w.numpy(), 25.0, 1.0, k), rel=1e-10)


def test_bridge_invariance_scale_hand_value():
    """Rows f¹ = [[1, 2], [3, 4]], f² = [[0, 2], [3, 1]], W_p = I: squared differences 1, 0, 0, 9 (sum 10).
    The authors' code (default "mean"): 10 / (n·d) = 10 / 4 = 2.5; eq. 17 literally ("sum"): 10 / n = 5."""
    f1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    f2 = torch.tensor([[0.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    kw = dict(c_cov=0.0, k=1, standardize_features=False, symmetric=False, with_terms=True)
    assert bridge_loss(f1, f2, None, **kw)[1]["inv"].item() == 2.5
    assert bridge_loss(f1, f2, None, inv_scale="sum", **kw)[1]["inv"].item() == 5.0
    with pytest.raises(ConfigError, match="method.inv_scale"):
        bridge_loss(f1, f2, None, inv_scale="paper")


def test_bridge_mean_scale_lets_cov_ipred_train():
    """Table 3 "Cov + I-PRED" (c_inv = c_cov = 1, W_p = I, no STD). A constant unit vector: inv 0,
    cov ‖I − e₁e₁ᵀ‖²/d = (d − 1)/d = 7/8. Hadamard rows (C = HᵀH/n = I exactly, cov 0) whose second view
    differs by ±√0.2 per element: inv 0.2 as a mean over elements, d·0.2 = 1.6 summed over d. In the code's
    units the spread representation is the cheaper one; read literally, eq. 17 prefers the constant."""
    h = torch.tensor([[1.0]], dtype=torch.float64)
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)  # 8 × 8 Hadamard, HᵀH = 8 I
    signs = torch.where(torch.arange(64).reshape(8, 8) % 3 == 0, -1.0, 1.0).double()
    spread1, spread2 = h, h + 0.2 ** 0.5 * signs
    const = torch.zeros(8, 8, dtype=torch.float64)
    const[:, 0] = 1.0
    kw = dict(c_inv=1.0, c_cov=1.0, k=1, standardize_features=False, symmetric=False)
    assert bridge_loss(const, const, None, **kw).item() == pytest.approx(7 / 8, rel=1e-12)
    assert bridge_loss(spread1, spread2, None, **kw).item() == pytest.approx(0.2, rel=1e-12)
    assert bridge_loss(spread1, spread2, None, inv_scale="sum", **kw).item() == pytest.approx(1.6, rel=1e-12)


def test_bridge_identity_predictor_reduces_to_correlation_distance():
    """I-PRED (W_p = I, §4.3/§5.4): the covariance term is ‖FᵀF/n − I‖²_F / d (rows = samples), the
    distance of the uncentered auto-correlation to I, i.e. BRIDGE's ‖Σ − I‖² up to 1/d."""
    f1, f2 = rand(10, 4, seed=41), rand(10, 4, seed=42)
    corr = f1.T @ f1 / 10
    expect_cov = sum((corr[i, j].item() - (i == j)) ** 2 for i in range(4) for j in range(4)) / 4
    inv = sum(((f1[b] - f2[b]) ** 2).sum().item() for b in range(10)) / 10 / 4
    got, terms = bridge_loss(f1, f2, None, c_inv=2.0, c_cov=3.0, k=1, standardize_features=False,
                             symmetric=False, with_terms=True)
    assert terms["cov"].item() == pytest.approx(expect_cov, rel=1e-12)
    assert got.item() == pytest.approx(2.0 * inv + 3.0 * expect_cov, rel=1e-12)
    eye = torch.eye(4, dtype=torch.float64)
    assert bridge_loss(f1, f2, eye, k=1).item() == pytest.approx(bridge_loss(f1, f2, None, k=1).item(), rel=1e-12)


def test_bridge_partitions_average_blockwise():
    """The k partition terms are averaged (the authors' code: one term per GPU, gradients averaged by DDP)."""
    p, w = rand(12, 3, seed=43), rand(3, 3, seed=44)
    blocks = sum(covariance_term(p[i * 4:(i + 1) * 4], w, 1) for i in range(3)) / 3
    assert covariance_term(p, w, 3).item() == pytest.approx(blocks.item(), rel=1e-12)


def test_bridge_collapse_without_std_and_bias_option():
    """§4.2: without STD, f = 0 and W_p = O give zero loss (the collapse STD prevents)."""
    zeros = torch.zeros(8, 3, dtype=torch.float64)
    w0 = torch.zeros(3, 3, dtype=torch.float64)
    assert bridge_loss(zeros, zeros, w0, k=2, standardize_features=False).item() == 0
    z1, z2, w, b = rand(8, 3, seed=47), rand(8, 3, seed=48), rand(3, 3, seed=49), rand(3, seed=50)
    p1 = z1 @ w.T + b
    expect_cov = ((w.T @ w - p1.T @ p1 / 8) ** 2).sum() / 3
    got = bridge_loss(z1, z2, w, b, c_inv=0.0, k=1, standardize_features=False, symmetric=False)
    assert got.item() == pytest.approx(expect_cov.item(), rel=1e-12)


def test_bridge_stop_gradient_and_k_error():
    z1, z2, w = leaf(8, 3, seed=51), leaf(8, 3, seed=52), rand(3, 3, seed=53)
    bridge_loss(z1, z2, w, c_cov=0.0, k=1, stop_gradient=True, symmetric=False).backward()
    assert z2.grad is None and z1.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="method.k"):
        bridge_loss(z1, z2, w, k=3)


def test_bridge_gradcheck():
    args = (leaf(8, 3, seed=54), leaf(8, 3, seed=55), leaf(3, 3, seed=56), leaf(3, seed=57))
    assert gradcheck(lambda a, b, w, c: bridge_loss(a, b, w, c, k=2), args)


def test_standardize_matches_numpy():
    x = rand(9, 4, seed=58)
    assert np.allclose(standardize(x, unbiased=True, eps=0.0).numpy(), np_std(x.numpy()), atol=1e-12)
    biased = (x.numpy() - x.numpy().mean(0)) / np.sqrt(x.numpy().var(0) + 1e-5)
    assert np.allclose(standardize(x).numpy(), biased, atol=1e-12)
