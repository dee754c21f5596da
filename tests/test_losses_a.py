"""Losses of method zoo part A, each against an independent computation (explicit loops, hand values,
closed-form gradients of ZHANG eq. 6 / §3.3, float64 finite differences)."""
import math

import pytest
import torch
from torch.autograd import gradcheck

from siamlab.losses.byol import byol_loss
from siamlab.losses.center import center_norm, center_simple_loss, invariance_loss
from siamlab.losses.dino import dino_loss
from siamlab.losses.functional import treat_norm_as_constant
from siamlab.losses.infonce import info_nce, nt_xent, nt_xent_weights, weight_entropy
from siamlab.losses.moco import moco_loss
from siamlab.losses.triplet import triplet_loss
from siamlab.methods.directpred import directpred_weight
from siamlab.methods.ema import cosine_momentum, ema_update_, make_target

D64 = torch.float64


def rand(*shape, seed=0, unit=False):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)
    return x / x.norm(dim=-1, keepdim=True) if unit else x


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- InfoNCE / NT-Xent
def nt_xent_loop(z1, z2, tau):
    """SimCLR's loss written anchor by anchor with math.log / math.exp."""
    z = unit(torch.cat([z1, z2])).tolist()
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        sims = {j: sum(x * y for x, y in zip(z[a], z[j])) / tau for j in range(2 * n) if j != a}
        total += -sims[pos] + math.log(sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


def test_nt_xent_matches_explicit_loop():
    z1, z2 = rand(6, 5, seed=1), rand(6, 5, seed=2)
    for tau in (0.1, 0.5):
        assert nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_loop(z1, z2, tau), rel=1e-10)


def test_nt_xent_hand_value():
    # z1 = z2 = [e1, e2]: each anchor sees its positive (cos 1) and two orthogonal negatives (cos 0),
    # so L = log(1 + 2 exp(-1/τ)); with one sample there are no negatives and L = 0.
    e = torch.eye(2, dtype=D64)
    assert nt_xent(e, e.clone(), 0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2.0)))
    assert nt_xent(e[:1], e[:1].clone(), 0.5).item() == pytest.approx(0.0, abs=1e-12)


def test_nt_xent_weights_are_a_distribution_without_self():
    z1, z2 = rand(5, 4, seed=3), rand(5, 4, seed=4)
    lam = nt_xent_weights(z1, z2, 0.2)
    assert lam.shape == (10, 10)
    torch.testing.assert_close(lam.sum(1), torch.ones(10, dtype=D64))
    assert torch.all(lam.diagonal() == 0)
    z = unit(torch.cat([z1, z2]))
    a, j = 2, 7  # one entry by hand: exp(Z_a·Z_j/τ) / Σ_{i≠a} exp(Z_a·Z_i/τ)
    num = math.exp(float(z[a] @ z[j]) / 0.2)
    den = sum(math.exp(float(z[a] @ z[i]) / 0.2) for i in range(10) if i != a)
    assert lam[a, j].item() == pytest.approx(num / den, rel=1e-10)


def test_weight_entropy_extremes():
    uniform = torch.full((3, 8), 1 / 8, dtype=D64)
    onehot = torch.eye(8, dtype=D64)[:3]
    torch.testing.assert_close(weight_entropy(uniform), torch.full((3,), math.log(8), dtype=D64))
    torch.testing.assert_close(weight_entropy(onehot), torch.zeros(3, dtype=D64))


def test_nt_xent_gradcheck():
    z1, z2 = rand(4, 3, seed=5).requires_grad_(), rand(4, 3, seed=6).requires_grad_()
    assert gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def test_nt_xent_gradient_on_normalized_z_closed_form():
    """ZHANG eq. 6 symmetrized: Mτ·(−∂L/∂Z_a) = Z_b − ½(Σ_j λ_aj Z_j + Σ_k λ_ka Z_k)."""
    m, tau = 5, 0.4
    z1, z2 = rand(m, 6, seed=7, unit=True), rand(m, 6, seed=8, unit=True)
    leaf = z1.clone().requires_grad_()
    with treat_norm_as_constant():
        nt_xent(leaf, z2, tau).backward()
    got = -leaf.grad * m * tau
    lam = nt_xent_weights(z1, z2, tau)
    zall = torch.cat([z1, z2])
    want = z2 - 0.5 * (lam[:m] @ zall + lam[:, :m].T @ zall)
    torch.testing.assert_close(got, want)


def test_info_nce_gradient_is_zhang_eq6():
    """−∂L/∂Q_a = (K_a − Σ_{i≥0} λ_i Z_i)/(Mτ) with Z_0 = K_a (ZHANG eq. 6)."""
    m, kneg, tau = 4, 7, 0.2
    q, k, neg = rand(m, 5, seed=9, unit=True), rand(m, 5, seed=10, unit=True), rand(kneg, 5, seed=11, unit=True)
    leaf = q.clone().requires_grad_()
    with treat_norm_as_constant():
        info_nce(leaf, k, neg, tau).backward()
    for a in range(m):
        cands = torch.cat([k[a:a + 1], neg])
        lam = torch.softmax(cands @ q[a] / tau, dim=0)
        want = (k[a] - lam @ cands) / (m * tau)
        torch.testing.assert_close(-leaf.grad[a], want)


# ---------------------------------------------------------------- MoCo
def test_moco_loss_matches_loop_and_stops_gradient():
    q1, q2, k1, k2 = (rand(3, 4, seed=s) for s in (12, 13, 14, 15))
    queue = rand(6, 4, seed=16)

    def one(q, k):
        total = 0.0
        for a in range(q.shape[0]):
            qa = unit(q[a])
            pos = math.exp(float(qa @ unit(k[a])) / 0.2)
            negs = sum(math.exp(float(qa @ unit(x)) / 0.2) for x in queue)
            total += -math.log(pos / (pos + negs))
        return total / q.shape[0]

    assert moco_loss(q1, q2, k1, k2, queue, 0.2).item() == pytest.approx(one(q1, k2), rel=1e-10)
    sym = moco_loss(q1, q2, k1, k2, queue, 0.2, symmetric=True).item()
    assert sym == pytest.approx(0.5 * (one(q1, k2) + one(q2, k1)), rel=1e-10)
    k2g, qg = k2.clone().requires_grad_(), queue.clone().requires_grad_()
    moco_loss(q1.requires_grad_(), q2, k1, k2g, qg, 0.2).backward()
    assert k2g.grad is None and qg.grad is None and q1.grad is not None


def test_moco_gradcheck():
    q, k, queue = rand(3, 4, seed=17).requires_grad_(), rand(3, 4, seed=18), rand(5, 4, seed=19)
    assert gradcheck(lambda a: moco_loss(a, a, k, k, queue, 0.3, symmetric=True), (q,))


# ---------------------------------------------------------------- triplet
def test_triplet_value_and_gradients():
    m = 4
    z1, z2 = rand(m, 3, seed=20, unit=True), rand(m, 3, seed=21, unit=True)
    n1, n2 = rand(m, 3, seed=22, unit=True), rand(m, 3, seed=23, unit=True)
    want = -0.5 * sum(float(z1[i] @ (z2[i] - n1[i]) + z2[i] @ (z1[i] - n2[i])) for i in range(m)) / m
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    with treat_norm_as_constant():
        loss = triplet_loss(a, b, n1, n2)
        loss.backward()
    assert loss.item() == pytest.approx(want, rel=1e-12)
    # ZHANG §3.3: −∂L/∂Z_a = Z_b − Z_n (times 1/(2M)); the target path carries no gradient.
    torch.testing.assert_close(-a.grad * 2 * m, z2 - n1)
    torch.testing.assert_close(-b.grad * 2 * m, z1 - n2)


def test_triplet_gradient_through_the_norm():
    """Finite differences cannot see a stop-gradient, so the raw-z gradient is checked against the chain
    rule by hand: ∂L/∂z_a = −(I − Z_a Z_aᵀ)(Z_b − Z_n) / (2M‖z_a‖)."""
    m = 3
    z1, z2, n = rand(m, 4, seed=24), rand(m, 4, seed=25), rand(m, 4, seed=26)
    a = z1.clone().requires_grad_()
    triplet_loss(a, z2, n, n).backward()
    for i in range(m):
        za = unit(z1[i])
        proj = torch.eye(4, dtype=D64) - torch.outer(za, za)
        want = -proj @ (unit(z2[i]) - unit(n[i])) / (2 * m * z1[i].norm())
        torch.testing.assert_close(a.grad[i], want)


# ---------------------------------------------------------------- BYOL
def test_byol_equals_bridge_eq1_and_stops_gradient():
    p1, p2, t1, t2 = (rand(5, 4, seed=s) for s in (27, 28, 29, 30))
    want = sum(torch.linalg.vector_norm(unit(p) - unit(t), dim=1).pow(2).mean() for p, t in ((p1, t2), (p2, t1)))
    t2g = t2.clone().requires_grad_()
    loss = byol_loss(p1.requires_grad_(), p2, t1, t2g)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)
    loss.backward()
    assert t2g.grad is None
    assert gradcheck(lambda a, b: byol_loss(a, b, t1, t2), (rand(5, 4, seed=31).requires_grad_(),
                                                            rand(5, 4, seed=32).requires_grad_()))


# ---------------------------------------------------------------- DINO
def test_dino_loss_matches_loop():
    s1, s2, t1, t2 = (rand(3, 5, seed=s) for s in (33, 34, 35, 36))
    c = rand(5, seed=37)
    ts, tt = 0.1, 0.04

    def ce(t, s):
        total = 0.0
        for i in range(t.shape[0]):
            tw = [math.exp((t[i, k] - c[k]).item() / tt) for k in range(5)]
            sw = [math.exp(s[i, k].item() / ts) for k in range(5)]
            total += -sum(tw[k] / sum(tw) * math.log(sw[k] / sum(sw)) for k in range(5))
        return total / t.shape[0]

    want = 0.5 * (ce(t1, s2) + ce(t2, s1))
    assert dino_loss([s1, s2], [t1, t2], c, ts, tt).item() == pytest.approx(want, rel=1e-9)


def test_dino_uniform_teacher_hand_value_and_gradcheck():
    # a constant teacher equal to the center gives the uniform target: L = mean LSE(s/τ) − mean(s/τ)
    s = rand(4, 6, seed=38)
    t = torch.ones(4, 6, dtype=D64)
    c = torch.ones(6, dtype=D64)
    want = (torch.logsumexp(s / 0.1, 1) - (s / 0.1).mean(1)).mean()
    assert dino_loss([s, s], [t, t], c, 0.1, 0.04).item() == pytest.approx(want.item(), rel=1e-12)
    tg = rand(4, 6, seed=39).requires_grad_()
    s1 = rand(4, 6, seed=40).requires_grad_()
    dino_loss([s1, s1], [tg, tg], c, 0.1, 0.04).backward()
    assert tg.grad is None
    assert gradcheck(lambda a, b: dino_loss([a, b], [t, s], c, 0.1, 0.5), (s1.detach().requires_grad_(),
                                                                          rand(4, 6, seed=41).requires_grad_()))


# ---------------------------------------------------------------- CENTER
def test_center_objective_hand_values():
    e = torch.eye(2, dtype=D64)
    # views equal: L_inv = −1 (cosine) or 0 (mse); s = mean(e1, e2, e1, e2) = (½, ½), ‖s‖ = 1/√2
    assert center_norm(e, e).item() == pytest.approx(1 / math.sqrt(2))
    assert center_simple_loss(e, e).item() == pytest.approx(0.5 * (-1 + 1 / math.sqrt(2)))
    assert center_simple_loss(e, e, invariance="mse").item() == pytest.approx(0.5 / math.sqrt(2))
    assert center_simple_loss(e, e, lambda_l=0.0).item() == pytest.approx(-0.5)
    # opposite views: cos = −1, ‖Z_a − Z_b‖² = 4, s = 0
    assert center_simple_loss(e, -e).item() == pytest.approx(0.5)
    assert invariance_loss(e, -e, "mse").item() == pytest.approx(4.0)
    assert center_simple_loss(3 * e, 3 * e, lambda_l=2.0).item() == pytest.approx(0.5 * (-1 - 2 / math.sqrt(2)))


def test_center_gradcheck_both_views():
    z1, z2 = rand(4, 3, seed=42).requires_grad_(), rand(4, 3, seed=43).requires_grad_()
    for inv in ("cosine", "mse"):
        assert gradcheck(lambda a, b: center_simple_loss(a, b, -1.0, inv), (z1, z2))


def test_center_gradient_on_normalized_z():
    """cosine: −∂L/∂Z_a = [Z_b + (λ_L/2) s/‖s‖] / (2M)."""
    m, lam = 5, -1.0
    z1, z2 = rand(m, 4, seed=44, unit=True), rand(m, 4, seed=45, unit=True)
    leaf = z1.clone().requires_grad_()
    with treat_norm_as_constant():
        center_simple_loss(leaf, z2, lam).backward()
    s = torch.cat([z1, z2]).mean(0)
    torch.testing.assert_close(-leaf.grad * 2 * m, z2 + lam / 2 * s / s.norm())


# ---------------------------------------------------------------- DirectPred and EMA helpers
def test_directpred_weight_hand_value():
    corr = torch.diag(torch.tensor([4.0, 1.0, 0.0], dtype=D64))
    want = torch.diag(torch.tensor([1.1, 0.6, 0.1], dtype=D64))  # sqrt(s)/max sqrt(s) + 0.1
    torch.testing.assert_close(directpred_weight(corr, 0.1), want)


def test_directpred_weight_symmetric_psd_same_eigenvectors():
    a = rand(20, 6, seed=46)
    corr = a.T @ a / 20
    w = directpred_weight(corr, 0.01)
    torch.testing.assert_close(w, w.T, rtol=0, atol=0)
    assert torch.linalg.eigvalsh(w).min() >= 0.01 - 1e-9
    torch.testing.assert_close(w @ corr, corr @ w)  # shares F's eigenvectors


def test_cosine_momentum_values():
    assert cosine_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.9, 25, 100) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)


def test_ema_update_formula_and_buffers():
    online = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    before = [p.detach().clone() for p in target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(3.0)
    ema_update_(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o.detach())
    assert torch.all(target[1].running_mean == 3.0)
