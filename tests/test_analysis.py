"""Diagnostics layer (siamlab.analysis): every metric against an independent float64 computation."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamlab.analysis import gradients as G
from siamlab.analysis import metrics as M
from siamlab.analysis import predictor as P
from siamlab.analysis.live import LiveDiagnostics
from siamlab.analysis.report import analyze
from siamlab.analysis.verdict import verdicts
from siamlab.config import ModelConfig
from siamlab.errors import SiamlabError
from siamlab.losses.cosine import negative_cosine
from siamlab.losses.functional import l2n
from siamlab.methods.base import Forward, GradFrame, LossOut, Method
from siamlab.methods.simsiam import SimSiam, SimSiamParams
from siamlab.models import Encoder, projection_mlp


def rand(*shape, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) + shift


def np_unit(z):
    z = np.asarray(z, dtype=np.float64)
    return z / np.sqrt((z * z).sum(axis=1, keepdims=True))


# --- metrics --------------------------------------------------------------------------------------
def test_std_center_residual_against_numpy():
    z = rand(40, 7, shift=0.7)
    zn = np_unit(z.numpy())
    n, d = zn.shape
    std = np.mean([np.std(zn[:, j], ddof=1) for j in range(d)])
    o = zn.sum(axis=0) / n
    mr = np.mean([math.sqrt(sum((zn[i, j] - o[j]) ** 2 for j in range(d))) for i in range(n)])
    assert float(M.std_of_normalized(z)) == pytest.approx(std, rel=1e-12)
    assert float(M.std_scaled(z)) == pytest.approx(std * math.sqrt(d), rel=1e-12)
    assert float(M.m_o(z)) == pytest.approx(np.linalg.norm(o), rel=1e-12)
    assert float(M.center_norm(z)) == pytest.approx(np.linalg.norm(o), rel=1e-12)
    assert float(M.m_r(z)) == pytest.approx(mr, rel=1e-12)
    # the rms residual obeys E‖r‖² = 1 − m_o², so the mean m_r is below √(1 − m_o²)
    assert float(M.m_r(z)) <= math.sqrt(1 - float(M.m_o(z)) ** 2) + 1e-12


def test_identical_vectors_are_collapsed():
    z = rand(1, 9).repeat(30, 1) * torch.linspace(0.5, 3, 30, dtype=torch.float64)[:, None]
    assert float(M.m_o(z)) == pytest.approx(1.0, abs=1e-12)
    assert float(M.m_r(z)) == pytest.approx(0.0, abs=1e-7)
    assert float(M.std_of_normalized(z)) == pytest.approx(0.0, abs=1e-7)
    assert float(M.effective_rank(z)) < 1.0 + 1e-6 or float(M.covariance_spectrum(z).max()) < 1e-20


def test_isotropic_gaussian():
    d = 16
    z = rand(6000, d, seed=1)
    assert float(M.m_o(z)) < 0.04
    assert float(M.std_of_normalized(z)) == pytest.approx(1 / math.sqrt(d), rel=0.03)
    assert float(M.std_scaled(z)) == pytest.approx(1.0, rel=0.03)
    assert float(M.m_r(z)) == pytest.approx(1.0, abs=0.01)
    assert float(M.effective_rank(z)) > 0.97 * d


def test_batch_order_invariance():
    z = rand(50, 6, seed=2, shift=0.3)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    for fn in (M.std_scaled, M.m_o, M.m_r, M.covariance_term, M.sigma_minus_identity, M.l_cor, M.effective_rank,
               M.uniformity):
        assert float(fn(z[perm])) == pytest.approx(float(fn(z)), rel=1e-10), fn.__name__


def test_covariance_term_against_np_cov():
    z = rand(30, 5, seed=4, shift=0.5)
    zn = np_unit(z.numpy())
    c = np.cov(zn, rowvar=False)  # (N − 1) normalization, as ZHANG Algorithm 6
    off = sum(c[i, j] ** 2 for i in range(5) for j in range(5) if i != j)
    assert float(M.covariance_term(z)) == pytest.approx(off / 5, rel=1e-12)
    c_raw = np.cov(z.numpy(), rowvar=False)
    off_raw = (c_raw**2).sum() - (np.diag(c_raw) ** 2).sum()
    assert float(M.covariance_term(z, normalize=False)) == pytest.approx(off_raw / 5, rel=1e-12)


def test_decorrelation_gradient_closed_form_and_gradcheck():
    z = M.unit(rand(12, 4, seed=5, shift=0.4))
    n, d = z.shape
    zc = z - z.mean(0)
    c = zc.T @ zc / (n - 1)
    c_off = c - torch.diag(torch.diagonal(c))
    want = -4.0 / (d * (n - 1)) * zc @ c_off  # −∂/∂Z of Σ_{i≠j} C_ij² / d
    assert torch.allclose(G.decorrelation_gradient(z), want, atol=1e-13)
    leaf = rand(6, 3, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(M.covariance_term, (leaf,))


def test_correlation_whitened_and_degenerate():
    x = rand(200, 6, seed=7) @ rand(6, 6, seed=8)
    xc = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(xc.T @ xc / 199)
    white = xc @ evecs @ torch.diag(evals.rsqrt()) @ evecs.T  # ZCA: identity covariance
    assert float(M.sigma_minus_identity(white)) < 1e-20
    assert torch.allclose(M.correlation_matrix(x), torch.from_numpy(np.corrcoef(x.numpy(), rowvar=False)), atol=1e-12)
    same = rand(50, 1, seed=9).repeat(1, 5)  # five identical dimensions: ‖Σ − I‖² = d² − d
    assert float(M.sigma_minus_identity(same)) == pytest.approx(4.0, rel=1e-12)
    dead = torch.cat([rand(50, 3, seed=10), torch.zeros(50, 1, dtype=torch.float64)], 1)
    assert math.isfinite(float(M.sigma_minus_identity(dead)))


def test_l_cor_and_l_bound_hand_values():
    d = 4
    basis = torch.eye(d, dtype=torch.float64) * 3.0  # Z = e_1..e_d once each: Λ = I
    assert float(M.l_cor(basis)) == pytest.approx(0.0, abs=1e-24)
    collapsed = torch.zeros(10, d, dtype=torch.float64)
    collapsed[:, 0] = 2.0  # Λ = d·e_1e_1ᵀ: ‖Λ − I‖² = (d − 1)² + (d − 1)
    assert float(M.l_cor(collapsed)) == pytest.approx(d * (d - 1), rel=1e-12)
    assert M.l_bound(3.0, 4, 10) == pytest.approx(2 * 3 / 16 + 6 / 16)
    assert M.l_bound(0.0, 20, 10) == pytest.approx(-10 / 400)


def test_l_cor_loop_and_eval_module_agree():
    z = rand(25, 6, seed=11, shift=0.2)
    f = math.sqrt(6) * np_unit(z.numpy())
    lam = sum(np.outer(fi, fi) for fi in f) / 25
    want = ((lam - np.eye(6)) ** 2).sum()
    assert float(M.l_cor(z)) == pytest.approx(want, rel=1e-12)
    from siamlab.eval.ncm import l_cor as eval_l_cor  # written independently by the evaluation helper

    assert float(M.l_cor(z)) == pytest.approx(eval_l_cor(z), rel=1e-10)


def test_effective_rank_cases():
    q, _ = torch.linalg.qr(rand(40, 5, seed=12) - rand(40, 5, seed=12).mean(0))
    assert float(M.effective_rank(q * 7.0)) == pytest.approx(5.0, rel=1e-9)  # equal singular values
    rank1 = rand(40, 1, seed=13) @ rand(1, 5, seed=14)
    assert float(M.effective_rank(rank1)) == pytest.approx(1.0, abs=1e-6)
    x = rand(40, 5, seed=15) * torch.tensor([3.0, 2, 1, 0.5, 0.1], dtype=torch.float64)
    s = np.linalg.svd(x.numpy() - x.numpy().mean(0), compute_uv=False)
    p = s / s.sum()
    assert float(M.effective_rank(x)) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)


def test_alignment_uniformity_and_interclass_bruteforce():
    za, zb = rand(12, 4, seed=16), rand(12, 4, seed=17)
    a, b = np_unit(za.numpy()), np_unit(zb.numpy())
    assert float(M.alignment(za, zb)) == pytest.approx(np.mean([np.sum((a[i] - b[i]) ** 2) for i in range(12)]), rel=1e-12)
    pot = [math.exp(-2 * np.sum((a[i] - a[j]) ** 2)) for i in range(12) for j in range(12) if i != j]
    assert float(M.uniformity(za)) == pytest.approx(math.log(np.mean(pot)), rel=1e-12)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2])
    mu = [a[y.numpy() == k].mean(0) for k in range(3)]
    p = [np.mean(y.numpy() == k) for k in range(3)]
    num = sum(p[i] * p[j] * (mu[i] @ mu[j]) ** 2 for i in range(3) for j in range(3) if i != j)
    assert float(M.interclass_cos2(za, y, 4)) == pytest.approx(num / (1 - sum(q * q for q in p)), rel=1e-12)


# --- gradient decomposition -----------------------------------------------------------------------
class _TwoView(Method):
    """Test methods: the record is given directly (z, p); only loss and gradient_frame matter."""

    def __init__(self, loss_fn, frame_fn):
        super().__init__(nn.Identity(), None)
        self._loss_fn, self._frame_fn = loss_fn, frame_fn

    def loss(self, out):
        return LossOut(self._loss_fn(out))

    def gradient_frame(self, out):
        return self._frame_fn(out)


def _views(m=16, d=6, seed=20, shift=0.8):
    return rand(m, d, seed=seed, shift=shift), rand(m, d, seed=seed + 1, shift=shift)


def test_cosine_gradient_is_basic_exactly():
    za, zb = _views()
    meth = _TwoView(lambda o: negative_cosine(o.z[0], o.z[1].detach()),
                    lambda o: GradFrame(("z", 0), ("z", 1), float(o.z[0].shape[0])))
    parts = G.gradient_parts(meth, Forward(z=[za, zb]))
    assert torch.allclose(parts.g, M.unit(zb), atol=1e-14)  # ZHANG eq. 3: −∂L/∂Z_a = Z_b
    assert torch.allclose(parts.anchor, M.unit(za), atol=1e-14)
    s = G.summarize(parts)
    assert float(s["ge_rms"]) < 1e-13 and float(s["grad_basic_cos"]) == pytest.approx(1.0)


def test_triplet_extra_gradient_is_minus_negative():
    za, zb = _views(seed=22)
    def loss(o):
        zbn = l2n(o.z[1].detach())
        return -(l2n(o.z[0]) * (zbn - zbn.roll(1, 0))).sum(1).mean()  # ZHANG §3.3, Z_n = another sample
    meth = _TwoView(loss, lambda o: GradFrame(("z", 0), ("z", 1), float(o.z[0].shape[0])))
    parts = G.gradient_parts(meth, Forward(z=[za, zb]))
    b = np_unit(zb.numpy())
    assert np.allclose(parts.g.numpy() - b, -np.roll(b, 1, 0), atol=1e-14)
    s = G.summarize(parts)
    oe, o = -b.mean(0), np_unit(za.numpy()).mean(0)  # o_e = −o_z (of the negatives)
    assert float(s["eta_star"]) == pytest.approx(oe @ o / (o @ o), rel=1e-10)
    assert float(s["cos_oe_o"]) == pytest.approx(oe @ o / np.linalg.norm(oe) / np.linalg.norm(o), rel=1e-10)
    assert float(s["oe_ratio"]) ** 2 + float(s["re_ratio"]) ** 2 == pytest.approx(1.0, rel=1e-12)


def test_infonce_gradient_matches_eq6_with_lambda():
    za, zb = _views(m=10, seed=24)
    tau = 0.3
    def loss(o):
        logits = l2n(o.z[0]) @ l2n(o.z[1].detach()).T / tau
        return F.cross_entropy(logits, torch.arange(logits.shape[0]))
    meth = _TwoView(loss, lambda o: GradFrame(("z", 0), ("z", 1), tau * o.z[0].shape[0]))
    parts = G.gradient_parts(meth, Forward(z=[za, zb]))
    a, b = np_unit(za.numpy()), np_unit(zb.numpy())
    lam = np.exp(a @ b.T / tau)
    lam /= lam.sum(1, keepdims=True)
    want = b - lam @ b  # ZHANG eq. 6 (times τ): Z_b − Σ_i λ_i Z_i
    assert np.allclose(parts.g.numpy(), want, atol=1e-13)
    lam_ours = G.infonce_weights(za, zb, tau, same_view_negatives=False)
    assert np.allclose(lam_ours.numpy(), lam, atol=1e-14)


def test_infonce_large_tau_oe_is_minus_center():
    za = rand(12, 5, seed=26, shift=0.6)
    def loss(o):
        logits = l2n(o.z[0]) @ l2n(o.z[1].detach()).T / 1e7
        return F.cross_entropy(logits, torch.arange(logits.shape[0]))
    meth = _TwoView(loss, lambda o: GradFrame(("z", 0), ("z", 1), 1e7 * o.z[0].shape[0]))
    s = G.summarize(G.gradient_parts(meth, Forward(z=[za, za.clone()])))
    assert float(s["eta_star"]) == pytest.approx(-1.0, abs=1e-5)  # uniform λ: o_e = −o_z
    assert float(s["cos_oe_o"]) == pytest.approx(-1.0, abs=1e-6)


def test_infonce_re_follows_the_decorrelation_gradient_more_as_tau_grows():
    """Why zhang-f5c's peak at τ 0.1–0.2 (ZHANG Fig. 5c) cannot be expected of the measurement itself: to first order
    in 1/τ, λ_i ∝ 1 + Z_a·r_i/τ, so r_e ≈ −C·Z_a/τ with C the batch covariance — the covariance-times-sample form of
    A.6's gradient C_off·r_a. On a fixed batch with correlated dimensions and no training, cos(r_e, −∇L_decor) rises
    with τ and approaches 1."""
    g = torch.Generator().manual_seed(31)
    mix = torch.eye(12, dtype=torch.float64) + 0.4 * torch.randn(12, 12, generator=g, dtype=torch.float64)
    za = torch.randn(64, 12, generator=g, dtype=torch.float64) @ mix + 0.5
    zb = za + 0.1 * torch.randn(64, 12, generator=g, dtype=torch.float64)

    def cos_re_decor(tau):
        def loss(o):
            logits = l2n(o.z[0]) @ l2n(o.z[1].detach()).T / tau
            return F.cross_entropy(logits, torch.arange(logits.shape[0]))
        meth = _TwoView(loss, lambda o: GradFrame(("z", 0), ("z", 1), tau * o.z[0].shape[0]))
        return float(G.summarize(G.gradient_parts(meth, Forward(z=[za, zb])))["cos_re_decor"])

    cos = [cos_re_decor(t) for t in (0.05, 0.1, 0.2, 0.5, 1.0, 100.0)]
    assert all(b > a for a, b in zip(cos, cos[1:])), cos
    assert cos[-1] > 0.9 and cos[-1] - cos[0] > 0.1, cos


def test_gradient_on_sphere_matches_finite_differences():
    """For a tangent direction v at Z_i, G_i·v equals −scale × the directional derivative of the ordinary loss."""
    za, zb = _views(m=8, d=5, seed=28)
    def loss(o):
        a, b = l2n(o.z[0]), l2n(o.z[1].detach())
        ac = a - a.mean(0)
        cov = ac.T @ ac / 7
        return -(a * b).sum(1).mean() + (cov**2).sum() - (a @ b.T).exp().mean()
    meth = _TwoView(loss, lambda o: GradFrame(("z", 0), None, 3.0))
    parts = G.gradient_parts(meth, Forward(z=[za, zb]))
    zn, norms = M.unit(za), za.norm(dim=1, keepdim=True)
    for i in (0, 5):
        v = rand(5, seed=30 + i)
        v = v - (v @ zn[i]) * zn[i]
        eps = 1e-6
        def at(t):
            z = zn.clone()
            z[i] = z[i] + t * v
            return float(loss(Forward(z=[z * norms, zb])))
        fd = (at(eps) - at(-eps)) / (2 * eps)
        assert float(parts.g[i] @ v) == pytest.approx(-3.0 * fd, rel=1e-6, abs=1e-9)


def _tiny_simsiam(predictor="linear", d=8, seed=0):
    torch.manual_seed(seed)
    enc = Encoder(nn.Linear(5, 10), projection_mlp(10, 10, d, 2), d)
    return SimSiam(enc, SimSiamParams(predictor=predictor), ModelConfig(pred_hidden=4)).double()


def _simsiam_out(meth, n=24, seed=40):
    x = rand(n, 5, seed=seed)
    return meth([x + 0.2 * rand(n, 5, seed=seed + 1), x + 0.2 * rand(n, 5, seed=seed + 2)])


def test_real_simsiam_decomposition_closed_form():
    meth = _tiny_simsiam()
    out = _simsiam_out(meth)
    parts = G.gradient_parts(meth, out)
    zb, pb, pa = (M.unit(t.detach()) for t in (out.z[1], out.p[1], out.p[0]))
    assert torch.allclose(parts.g, zb, atol=1e-13)  # ZHANG eq. 4: −∂L/∂P_a = Z_b
    assert torch.allclose(parts.basic, pb) and torch.allclose(parts.anchor, pa)
    assert all(p.grad is None for p in meth.parameters())  # diagnostics never touch parameter gradients
    s = G.summarize(parts)
    oe = (zb - pb).mean(0).numpy()  # o_e = o_z − o_p
    o = pa.mean(0).numpy()  # η_p is measured against o_p
    assert float(s["eta_star"]) == pytest.approx(oe @ o / (o @ o), rel=1e-10)
    etas = np.linspace(-3, 3, 601)
    scan = G.eta_scan(torch.from_numpy(oe), torch.from_numpy(o), etas).numpy()
    assert np.allclose(scan, G.eta_curve(float(s["cos_oe_o"]), float(s["oe_over_o"]), etas), atol=1e-10)
    assert G.zero_crossing(etas, scan) == pytest.approx(float(s["eta_star"]), abs=1e-3)


def test_mirror_simsiam_sign_convention():
    za, zb = _views(seed=50)
    h = nn.Linear(6, 6).double()
    with torch.no_grad():
        pb = h(zb)
    meth = _TwoView(lambda o: negative_cosine(o.z[0], o.p[1]),  # Mirror (ZHANG Alg. 1): −Z_a·P_b, P_b = h(sg z_b)
                    lambda o: GradFrame(("z", 0), ("z", 1), float(o.z[0].shape[0])))
    s = G.summarize(G.gradient_parts(meth, Forward(z=[za, zb], p=[h(za).detach(), pb])))
    oe = (np_unit(pb.numpy()) - np_unit(zb.numpy())).mean(0)  # o_e = o_p − o_z
    o = np_unit(za.numpy()).mean(0)  # η_z against o_z
    assert float(s["eta_star"]) == pytest.approx(oe @ o / (o @ o), rel=1e-10)


def test_eta_scan_hand_case_and_zero_crossing():
    o = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)
    oe = -0.5 * o + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    etas = [-1.0, -0.5, 0.0]
    assert G.eta_scan(oe, o, etas).tolist() == pytest.approx([0.5 * 2 / math.hypot(1.0, 1.0), 0.0, -1 / math.hypot(1, 1)])
    assert G.zero_crossing([-1.0, 0.0], [0.5, -1.5]) == pytest.approx(-0.75)
    assert math.isnan(G.zero_crossing([0.0, 1.0], [0.3, 0.2]))


def test_lambda_entropy_hand_and_nt_xent_weights():
    za, zb = _views(m=6, seed=60)
    lam = G.infonce_weights(za, zb, 1e9)
    assert float(G.lambda_entropy(za, zb, 1e9)) == pytest.approx(math.log(11), rel=1e-9)  # 2M − 1 candidates
    assert torch.all(lam[torch.arange(6), 6 + torch.arange(6)] == 0)
    from siamlab.losses.infonce import nt_xent_weights  # the InfoNCE helper's λ, columns [Z_a; Z_b]

    theirs = nt_xent_weights(za, zb, 0.2)[:6]
    ours = G.infonce_weights(za, zb, 0.2)
    assert torch.allclose(ours, torch.cat([theirs[:, 6:], theirs[:, :6]], 1), atol=1e-12)
    a, b = np_unit(za.numpy()), np_unit(zb.numpy())
    row = np.exp(np.concatenate([a[0] @ b.T, np.delete(a[0] @ a.T, 0)]) / 0.2)
    row /= row.sum()
    want = -(row * np.log(row)).sum()
    ent0 = torch.special.entr(ours[0]).sum()
    assert float(ent0) == pytest.approx(want, rel=1e-10)


# --- predictor ------------------------------------------------------------------------------------
def test_predictor_diagnostics_on_constructed_matrices():
    z = rand(30, 4, seed=70, shift=1.0)
    o = torch.from_numpy(np_unit(z.numpy()).mean(0))
    perp = torch.tensor([o[1], -o[0], 0, 0], dtype=torch.float64)
    assert float(P.bias_center_cosine(3 * o, z)) == pytest.approx(1.0)
    assert float(P.bias_center_cosine(perp, z)) == pytest.approx(0.0, abs=1e-12)
    a = rand(4, 4, seed=71)
    assert float(P.symmetry_gap(a + a.T)) == pytest.approx(0.0, abs=1e-15)
    assert float(P.symmetry_gap(a - a.T)) == pytest.approx(2.0)
    assert float(P.symmetry_gap(rand(300, 300, seed=73))) == pytest.approx(math.sqrt(2), rel=0.02)
    assert float(P.diagonal_dominance(torch.diag(torch.tensor([1.0, -2, 3, 4])))) == pytest.approx(1.0)
    assert float(P.diagonal_dominance(torch.ones(5, 5))) == pytest.approx(0.2)
    assert P.eigenvalues(2.5 * torch.eye(3)).real.tolist() == pytest.approx([2.5] * 3)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert sorted(P.eigenvalues(rot).imag.tolist()) == pytest.approx([-1.0, 1.0])


def test_wtw_fft_gap():
    z = rand(50, 4, seed=72)
    fft = z.T @ z / 50  # BRIDGE: F = [f_1 … f_n]/√n, F Fᵀ uncentered
    evals, evecs = torch.linalg.eigh(fft)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T  # W with WᵀW = F Fᵀ
    rel, fit = P.wtw_fft_gap(root, z)
    assert float(rel) < 1e-12 and float(fit) < 1e-12
    rel, fit = P.wtw_fft_gap(2 * root, z)  # 4FFᵀ − FFᵀ = 3FFᵀ; the fitted scale removes it
    assert float(rel) == pytest.approx(3.0) and float(fit) < 1e-12
    mats = P.predictor_matrices(root, z)
    assert set(mats) == {"W_p", "WtW", "FFt"} and torch.allclose(mats["FFt"], fft.float())


# --- live diagnostics -----------------------------------------------------------------------------
def test_should_log():
    meth = _tiny_simsiam()
    assert [s for s in range(7) if LiveDiagnostics(meth, 3).should_log(s)] == [0, 3, 6]
    assert not any(LiveDiagnostics(meth, 0).should_log(s) for s in range(5))


def test_live_values_match_direct_functions_and_one_sync(monkeypatch):
    meth = _tiny_simsiam("linear_bias")
    diag = LiveDiagnostics(meth, 1)
    out = _simsiam_out(meth)
    calls = []
    for name in ("item", "tolist", "__float__", "__bool__", "cpu", "numpy"):
        orig = getattr(torch.Tensor, name)
        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, spy)
    res = diag(out, 0)
    monkeypatch.undo()
    assert calls == ["tolist"]
    z0 = out.z[0].detach()
    assert res["m_o"] == pytest.approx(float(M.m_o(z0)), rel=1e-12)
    assert res["m_r"] == pytest.approx(float(M.m_r(z0)), rel=1e-12)
    assert res["std_scaled"] == pytest.approx(float(M.std_scaled(z0)), rel=1e-12)
    assert res["p_m_o"] == pytest.approx(float(M.m_o(out.p[0].detach())), rel=1e-12)
    assert res["bias_center_cos"] == pytest.approx(float(P.bias_center_cosine(meth.predictor.last_bias.detach(), z0)))
    assert res["wp_symmetry"] == pytest.approx(float(P.symmetry_gap(meth.predictor.linear_weight.detach())))
    # CENTER Fig. 5: the final BN's output is z; its input is the projector before the final BN
    assert res["center_post_bn"] == pytest.approx(res["m_o"], rel=1e-12)
    pre = meth.encoder.projector.pre_bn(meth.encoder.backbone(_simsiam_out_inputs(meth)[0]))
    assert res["center_pre_bn"] == pytest.approx(float(M.center_norm(pre.detach())), rel=1e-9)
    s = G.summarize(G.gradient_parts(meth, out))
    assert res["eta_star"] == pytest.approx(float(s["eta_star"]), rel=1e-12)
    assert "lambda_entropy" not in res  # SimSiam has no temperature


def _simsiam_out_inputs(meth, n=24, seed=40):
    x = rand(n, 5, seed=seed)
    return [x + 0.2 * rand(n, 5, seed=seed + 1), x + 0.2 * rand(n, 5, seed=seed + 2)]


def test_live_without_predictor_or_bn_and_deepcopy():
    za, zb = _views(seed=80)
    meth = _TwoView(lambda o: negative_cosine(o.z[0], o.z[1].detach()) + 0 * o.z[1].sum(),
                    lambda o: GradFrame(("z", 0), None, float(o.z[0].shape[0])))
    res = LiveDiagnostics(meth, 2)(Forward(z=[za, zb]), 2)
    assert "grad_basic_cos" not in res and res["grad_has_basic"] == 0.0 and "center_pre_bn" not in res
    assert res["grad_rms"] == pytest.approx(1.0)  # G = Z_b, unit rows
    meth2 = _tiny_simsiam()
    diag = LiveDiagnostics(meth2, 1)
    _simsiam_out(meth2)
    clone = copy.deepcopy(meth2)  # e.g. an EMA teacher: the tap is copied empty
    assert all(len(h.records) == 0 for h in clone.encoder.projector.final_bn._forward_hooks.values())
    diag.close()
    assert not meth2.encoder.projector.final_bn._forward_hooks


def test_representation_metrics_and_snapshot(tmp_path):
    meth = _tiny_simsiam("linear")
    diag = LiveDiagnostics(meth, 1)
    out = _simsiam_out(meth)
    diag(out, 0)
    h, z = out.h[0].detach(), out.z[0].detach()
    y = torch.arange(24) % 3
    res = diag.representation_metrics({"backbone": h, "projector": z}, y, 3)
    assert res["sigma_i_projector"] == pytest.approx(float(M.sigma_minus_identity(z)))
    assert res["l_bound_backbone"] == pytest.approx(M.l_bound(float(M.l_cor(h)), 10, 3))
    assert res["erank_projector"] == pytest.approx(float(M.effective_rank(z)))
    assert res["interclass_cos2_projector"] == pytest.approx(float(M.interclass_cos2(z, y, 3)))
    snap = np.load(diag.snapshot(tmp_path / "snapshots" / "epoch_0001.npz"))
    assert {"W_p", "WtW", "FFt", "eig_real", "eig_imag", "center", "spectrum_backbone", "spectrum_projector"} <= set(snap.files)
    assert np.allclose(snap["W_p"], meth.predictor.linear_weight.detach().numpy(), atol=1e-6)


def _dist_worker(rank, world, init_file, state, z, p, result_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        meth = _tiny_simsiam("linear_bias")
        meth.load_state_dict(state)
        n = z[0].shape[0] // world
        part = slice(rank * n, (rank + 1) * n)
        res = LiveDiagnostics(meth, 1)(Forward(z=[t[part] for t in z], p=[t[part] for t in p]), 0)
        (result_dir / f"rank{rank}.json").write_text(json.dumps(res))
    finally:
        dist.destroy_process_group()


def test_live_distributed_equals_single_process(tmp_path):
    """Under torchrun every rank holds a shard: the gathered diagnostics equal one process on the whole batch."""
    meth = _tiny_simsiam("linear_bias")
    out = _simsiam_out(meth, n=16)
    z, p = [t.detach() for t in out.z], [t.detach() for t in out.p]
    want = LiveDiagnostics(meth, 1)(Forward(z=z, p=p), 0)
    torch.multiprocessing.spawn(_dist_worker, args=(2, str(tmp_path / "init"), meth.state_dict(), z, p, tmp_path), nprocs=2)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert set(got) == set(want)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k


# --- verdicts -------------------------------------------------------------------------------------
def _diag_records(z, n=4):
    return [{"kind": "diag", "step": 10 * i, "epoch": i, "std_scaled": float(M.std_scaled(z)), "m_r": float(M.m_r(z))}
            for i in range(n)]


def test_verdicts():
    same = rand(1, 8).repeat(20, 1)
    v = verdicts(_diag_records(same), "completed")
    assert v["verdict"] == "collapsed" and v["collapsed"] and not v["diverged"]
    v = verdicts(_diag_records(rand(500, 8, seed=90)), "completed")
    assert v["verdict"] == "not collapsed" and v["collapsed"] is False
    train = [{"kind": "train", "step": 1, "epoch": 0, "loss": -0.5}, {"kind": "train", "step": 2, "epoch": 0, "loss": "nan"}]
    v = verdicts(train + _diag_records(same), "completed")
    assert v["verdict"] == "diverged" and v["collapsed"]
    assert verdicts([], "diverged")["verdict"] == "diverged"
    assert verdicts([{"kind": "train", "step": 1, "epoch": 0, "loss": 0.1}], "completed")["verdict"] == "unknown"
    ev = [{"kind": "eval", "step": 5, "epoch": 1, "std_scaled_projector": 0.02, "m_r_projector": 0.5}]
    assert verdicts(ev, "completed")["evidence"] == "eval" and verdicts(ev, "completed")["collapsed"]


# --- report ---------------------------------------------------------------------------------------
def _synthetic_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    meth = _tiny_simsiam("linear")
    diag = LiveDiagnostics(meth, 1)
    lines = []
    for step in range(0, 40, 10):
        out = _simsiam_out(meth, seed=step)
        lines.append({"kind": "train", "step": step, "epoch": step / 40, "loss": -0.1 * step})
        lines.append({"kind": "diag", "step": step, "epoch": step / 40, **diag(out, step)})
    for ep in (1, 2, 3):
        out = _simsiam_out(meth, seed=100 + ep)
        rep = diag.representation_metrics({"projector": out.z[0].detach()}, torch.arange(24) % 3, 3)
        lines.append({"kind": "eval", "step": 10 * ep, "epoch": ep, "knn_projector": 30.0 + ep, **rep})
    diag.snapshot(run / "snapshots" / "epoch_0003.npz")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "tr')
    (run / "summary.json").write_text(json.dumps({"status": "completed", "method": "simsiam", "final": {"knn_projector": 33.0}}))
    (run / "config.yaml").write_text("method:\n  name: simsiam\ndata:\n  name: blobs\n")
    return run


def test_analyze_synthetic_run(tmp_path, capsys):
    run = _synthetic_run(tmp_path)
    res = analyze(str(run))
    assert res["verdict"]["verdict"] == "not collapsed"
    names = {p.split("/")[-1] for p in res["plots"]}
    assert {"collapse.png", "gradients.png", "predictor.png", "eta_scan.png", "gen_bound.png", "spectrum.png",
            "predictor_heatmaps.png", "sigma_minus_identity.png", "decorrelation.png"} <= names
    for p in res["plots"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "verdict: not collapsed" in res["text"] and "knn_projector" in res["text"]
    assert res["text"] in capsys.readouterr().out


def test_analyze_bad_run_dirs(tmp_path):
    with pytest.raises(SiamlabError, match="does not exist"):
        analyze(str(tmp_path / "nope"))
    with pytest.raises(SiamlabError, match="no metrics.jsonl"):
        analyze(str(tmp_path))
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(SiamlabError, match="corrupt"):
        analyze(str(tmp_path))


def test_analyze_real_short_run(tmp_path):
    from siamlab import config
    from siamlab.engine.trainer import train

    cfg = config.load(None, [
        "data.name=blobs", "data.train_subset=256", "data.test_subset=90", "model.backbone=mlp", "model.width=16",
        "model.proj_hidden=16", "model.proj_out=8", "model.pred_hidden=4", "optim.epochs=1", "optim.batch_size=64",
        "diag.every_steps=1", f"engine.out={tmp_path}", "engine.run_name=r", "engine.progress=false",
        "engine.device=cpu", "eval.random_init=false", "eval.online_probe=false"])
    run = train(cfg).run_dir
    res = analyze(str(run))
    assert res["verdict"]["verdict"] == "not collapsed" and res["verdict"]["evidence"] == "diag"
    assert {"m_o", "m_r", "std_scaled", "eta_star", "cos_re_decor", "center_pre_bn"} <= set(res["final_diag"])
    assert "status: completed" in res["text"]
    assert {"collapse.png", "gradients.png", "eta_scan.png"} <= {p.split("/")[-1] for p in res["plots"]}


def test_decorrelation_matches_the_regularizer_of_losses():
    """Our A.6 term (Gram form, float64) equals the training regularizer, value and gradient on Z."""
    from siamlab.losses.decorrelation import decorrelation_loss

    z = rand(10, 14, seed=95, shift=0.3)
    assert float(M.covariance_term(z)) == pytest.approx(float(decorrelation_loss(z)), rel=1e-12)
    zn = M.unit(z).requires_grad_()
    with G.treat_norm_as_constant():
        (theirs,) = torch.autograd.grad(decorrelation_loss(zn), zn)
    assert torch.allclose(G.decorrelation_gradient(zn.detach()), -theirs, atol=1e-14)


def _all_methods():
    from siamlab.methods import available

    return sorted(available())


@pytest.mark.parametrize("name", _all_methods())
def test_every_method_through_live_diagnostics(name):
    from siamlab.config import MethodConfig
    from siamlab.methods import build_method
    from siamlab.models import build_encoder

    torch.manual_seed(0)
    mc = ModelConfig(backbone="mlp", width=16, proj_hidden=16, proj_out=8, pred_hidden=4)
    meth = build_method(MethodConfig(name=name), build_encoder(mc, (2,)), mc)
    meth.bind_dataset(128)
    x = torch.randn(128, 2)
    out = meth([x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)], torch.arange(128))
    before = {k: v.clone() for k, v in meth.state_dict().items()}
    res = LiveDiagnostics(meth, 1)(out, 0)
    assert {"m_o", "m_r", "std_scaled", "cov_term", "grad_rms", "oe_ratio", "re_ratio", "eta_star"} <= set(res)
    assert all(math.isfinite(v) for v in res.values()), res
    assert all(torch.equal(before[k], v) for k, v in meth.state_dict().items())  # diagnostics change no state
    assert all(p.grad is None for p in meth.parameters())


def test_analyze_plots_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A plot write that fails half-way (a full disk) leaves the previous plot and no temporary file, and is
    one sentence naming the plot."""
    from matplotlib.figure import Figure

    run = _synthetic_run(tmp_path)
    first = analyze(str(run))
    collapse = next(p for p in first["plots"] if p.endswith("collapse.png"))
    before = open(collapse, "rb").read()

    def full_disk(self, fname, *args, **kwargs):  # part of the file is written, then the disk is full
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG partial")
        else:
            with open(fname, "wb") as f:
                f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(SiamlabError, match=r"could not write the plot .*\.png \(No space left on device\)"):
        analyze(str(run))
    assert open(collapse, "rb").read() == before
    assert not [p for p in (run / "analysis").iterdir() if p.name.startswith(".")]  # no temporary file
