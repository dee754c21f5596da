"""ZHANG's SimSiam family: architectures, explicit EOA, gradient surgery, Conjecture 1 probes, phases.

Every gradient is checked against a closed form written independently of the code under test
(per-sample formulas of ZHANG eqs. 3–6, F.cosine_similarity / F.cross_entropy re-implementations).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamlab.config import MethodConfig, ModelConfig, RunConfig
from siamlab.errors import ConfigError, SiamlabError
from siamlab.losses import surgery as S
from siamlab.losses.functional import treat_norm_as_constant
from siamlab.methods import available, build_method
from siamlab.methods.base import Forward
from siamlab.methods.phased import PhasedMethod, build_phased
from siamlab.models import PREDICTORS, Encoder

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
D_IN, D = 6, 8
MODEL = ModelConfig(pred_hidden=4)


# --- helpers -------------------------------------------------------------------------------------
def tiny_encoder(bn: bool = True) -> Encoder:
    proj = [nn.Linear(16, D)] + ([nn.BatchNorm1d(D)] if bn else [])
    return Encoder(nn.Sequential(nn.Linear(D_IN, 16), nn.ReLU()), nn.Sequential(*proj), D)


def make(name: str, bn: bool = True, **params):
    torch.manual_seed(0)
    return build_method(MethodConfig(name=name, params=params), tiny_encoder(bn), MODEL)


def batch(m: int = 6, n: int = 2, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(m, D_IN, generator=g) for _ in range(n)]


def leaves(*shape_seeds, unit: bool = False) -> list:
    out = []
    for seed in shape_seeds:
        x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        out.append((x / x.norm(dim=1, keepdim=True) if unit else x).requires_grad_())
    return out


def cos_grad(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∂/∂a of −mean_i cos(a_i, t_i), t constant: −(T − (A·T)A) / (‖a‖ M) (quotient rule, ZHANG A.8 eq. 8)."""
    a, t = a.detach(), t.detach()
    na = a.norm(dim=1, keepdim=True)
    A, T = a / na, t / t.norm(dim=1, keepdim=True)
    return -(T - (A * T).sum(1, keepdim=True) * A) / (na * a.shape[0])


def neg_cos(a, b):
    return -F.cosine_similarity(a, b, dim=1).mean()


def unit(x):
    return (x / x.norm(dim=1, keepdim=True)).detach()


def grads(params) -> list:
    return [None if p.grad is None else p.grad.clone() for p in params]


def has_grad(module: nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def train_steps(method, views_fn, steps: int = 3, index=None) -> list:
    groups = [g for g in method.param_groups() if g["params"]]
    opt = torch.optim.SGD(groups, lr=0.05, momentum=0.9)
    losses = []
    for s in range(steps):
        out = method(views_fn(s), index)
        lo = method.total_loss(out)
        opt.zero_grad(set_to_none=True)
        lo.loss.backward()
        opt.step()
        method.after_step(s, steps)
        losses.append(float(lo.loss))
    return losses


# --- Naive Siamese, SimSiam without predictor / stop-gradient (ZHANG eq. 1, CENTER Fig. 4) -------
def test_naive_gradient_flows_through_both_views():
    za, zb = leaves(1, 2)
    lo = make("naive").loss(Forward(z=[za, zb]))
    assert float(lo.loss.detach()) == pytest.approx(float(neg_cos(za, zb).detach()))
    lo.loss.backward()
    assert torch.allclose(za.grad, cos_grad(za, zb)) and torch.allclose(zb.grad, cos_grad(zb, za))


def test_simsiam_nopred_stops_gradient_on_targets():
    za, zb = leaves(1, 2)
    make("simsiam_nopred").loss(Forward(z=[za, zb])).loss.backward()
    assert torch.allclose(za.grad, 0.5 * cos_grad(za, zb)) and torch.allclose(zb.grad, 0.5 * cos_grad(zb, za))


def test_simsiam_nosg_gradient_reaches_the_target_z():
    za, zb, pa, pb = leaves(1, 2, 3, 4)
    make("simsiam_nosg").loss(Forward(z=[za, zb], p=[pa, pb])).loss.backward()
    assert torch.allclose(za.grad, 0.5 * cos_grad(za, pb))  # from −P_b·Z_a, no sg
    assert torch.allclose(pa.grad, 0.5 * cos_grad(pa, zb))
    za2, zb2, pa2, pb2 = leaves(1, 2, 3, 4)
    make("simsiam").loss(Forward(z=[za2, zb2], p=[pa2, pb2])).loss.backward()
    assert za2.grad is None  # SimSiam: stop-gradient on z


# --- Mirror SimSiam (ZHANG Algs. 1-2) -----------------------------------------------------------
@pytest.mark.parametrize("variant", ["one_sided", "symmetric"])
def test_mirror_predictor_input_detached_output_carries_gradient(variant):
    m = make("mirror", predictor="linear_bias", variant=variant)
    out = m(batch())
    for t in out.z + out.p:
        t.retain_grad()
    m.loss(out).loss.backward()
    za, zb = out.z
    pa, pb = out.p
    half = 1.0 if variant == "one_sided" else 0.5
    assert torch.allclose(za.grad, half * cos_grad(za, pb), atol=1e-6)  # encoder via Z_a·P_b
    assert torch.allclose(pb.grad, half * cos_grad(pb, za), atol=1e-6)  # predictor via P_b
    if variant == "one_sided":
        assert zb.grad is None and pa.grad is None  # z_b only feeds the detached predictor input
    else:  # z_b's gradient is only −½Z_b·P_a's: nothing flows back through h(sg z_b)
        assert torch.allclose(zb.grad, 0.5 * cos_grad(zb, pa), atol=1e-6)
    assert has_grad(m.predictor) and has_grad(m.encoder)


# --- Symmetric Predictor (ZHANG Algs. 3-4, alternating) -----------------------------------------
def _sympred_reference(m, out):
    """Independent L_pred and L_enc of Alg. 4 from the recorded z (F.cosine_similarity)."""
    z1, z2 = out.z
    h = m.predictor
    l_pred = 0.5 * (neg_cos(h(z1.detach()), z2.detach()) + neg_cos(h(z2.detach()), z1.detach()))
    p1, p2 = h(z1), h(z2)
    l_enc = 0.5 * (neg_cos(p1, p2.detach()) + neg_cos(p2, p1.detach()))
    return l_pred, l_enc


@pytest.mark.parametrize("enc_trains_predictor", [False, True])
def test_sympred_alg4_predictor_gradients(enc_trains_predictor):
    m = make("sympred", predictor="linear_bias", variant="alg4", enc_trains_predictor=enc_trains_predictor)
    out = m(batch())
    m.loss(out).loss.backward()
    hp, ep = list(m.predictor.parameters()), list(m.encoder.parameters())
    got_h, got_e = grads(hp), grads(ep)
    out2 = m(batch())
    l_pred, l_enc = _sympred_reference(m, out2)
    want_h = torch.autograd.grad(l_pred, hp, retain_graph=True)
    if enc_trains_predictor:  # Alg. 4 pseudo-code as written: L_enc reaches h too
        want_h = [a + b for a, b in zip(want_h, torch.autograd.grad(l_enc, hp, retain_graph=True))]
    want_e = torch.autograd.grad(l_enc, ep)
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got_h, want_h))
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got_e, want_e))


def test_frozen_call_passes_input_gradient_only():
    from siamlab.methods.sympred import frozen_call
    from siamlab.models import build_predictor

    torch.manual_seed(0)
    h = build_predictor("mlp", 4, 3).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: frozen_call(h, t), (x,))  # float64 finite differences
    frozen_call(h, x).sum().backward()
    assert all(p.grad is None for p in h.parameters())
    assert torch.allclose(frozen_call(h, x), h(x))


def test_sympred_alg3_is_symmetric_cosine_on_p():
    m = make("sympred", predictor="linear_bias", variant="alg3")
    out = m(batch())
    lo = m.loss(out)
    p1, p2 = out.p
    assert float(lo.loss.detach()) == pytest.approx(float(neg_cos(p1, p2).detach()), abs=1e-6)
    lo.loss.backward()
    assert has_grad(m.predictor) and has_grad(m.encoder)


def test_sympred_alternating_switches_between_encoder_and_predictor():
    m = make("sympred", predictor="linear_bias", variant="alternating", alternate_every=2)
    turns = []
    for step in range(4):
        m.zero_grad(set_to_none=True)
        m.loss(m(batch(seed=step))).loss.backward()
        turns.append((has_grad(m.encoder), has_grad(m.predictor)))
        m.after_step(step, 4)
    assert turns == [(True, False), (True, False), (False, True), (False, True)]


# --- Trainable inverse predictor (ZHANG Alg. 5) -------------------------------------------------
def test_inverse_predictor_three_losses():
    m = make("inverse", predictor="linear_bias")
    out = m(batch())
    lo = m.loss(out)
    lo.loss.backward()
    hi, ep = list(m.inverse.parameters()), list(m.encoder.parameters())
    got_i, got_e = grads(hi), grads(ep)
    z1, z2 = m(batch()).z
    p1, p2 = m.predictor(z1), m.predictor(z2)
    s1, s2 = m.inverse(p1.detach()), m.inverse(p2.detach())
    l_inv = 0.5 * (neg_cos(s1, z1.detach()) + neg_cos(s2, z2.detach()))
    l_enc = 0.5 * (neg_cos(p1, s2.detach()) + neg_cos(p2, s1.detach()))
    assert float(lo.terms["l_inv_pred"]) == pytest.approx(float(l_inv), abs=1e-6)
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got_i, torch.autograd.grad(l_inv, hi, retain_graph=True)))
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got_e, torch.autograd.grad(l_enc, ep)))
    assert has_grad(m.predictor)


# --- Explicit EOA (ZHANG Table 1, A.3) ----------------------------------------------------------
def test_eoa_moving_average_memory_updates_exactly_the_batch_rows():
    m = make("eoa", mode="moving_average", momentum=0.8)
    m.bind_dataset(10)
    idx1 = torch.tensor([3, 7, 1])
    out = m(batch(3, seed=1), idx1)
    zb1 = unit(out.z[1])
    assert torch.allclose(out.targets[0], zb1)  # first visit: η_x = Z_b
    lo = m.loss(out)
    assert float(lo.loss) == pytest.approx(float(neg_cos(out.z[0], zb1)), abs=1e-6)
    assert torch.count_nonzero(m.memory) == 0  # the loss and forward leave the memory alone
    m.after_step(0, 2)
    assert torch.allclose(m.memory[idx1], zb1) and m.seen.tolist() == [i in (1, 3, 7) for i in range(10)]
    before = m.memory.clone()
    idx2 = torch.tensor([7, 2, 3])
    out2 = m(batch(3, seed=2), idx2)
    zb2 = unit(out2.z[1])
    want = torch.stack([0.8 * before[7] + 0.2 * zb2[0], zb2[1], 0.8 * before[3] + 0.2 * zb2[2]])
    assert torch.allclose(out2.targets[0], want, atol=1e-6)
    m.after_step(1, 2)
    untouched = [i for i in range(10) if i not in (7, 2, 3)]
    assert torch.equal(m.memory[untouched], before[untouched])
    assert torch.allclose(m.memory[idx2], want, atol=1e-6)
    with torch.no_grad():  # a diagnostic / evaluation forward does not write the memory
        m(batch(3, seed=3), idx2)
    m.after_step(2, 3)
    assert torch.allclose(m.memory[idx2], want, atol=1e-6)


def test_eoa_moving_average_needs_index_and_memory():
    m = make("eoa")
    with pytest.raises(ConfigError, match="bind_dataset"):
        m(batch(), torch.arange(6))
    m.bind_dataset(4)
    with pytest.raises(ConfigError, match="index"):
        m(batch())
    with pytest.raises(SiamlabError, match="outside"):
        m(batch(), torch.arange(6))


@pytest.mark.parametrize("through", [False, True])
def test_eoa_same_batch_pulls_first_view_to_mean_of_others(through):
    m = make("eoa", mode="same_batch", grad_through_mean=through)
    out = m(batch(n=4))
    for z in out.z:
        z.retain_grad()
    lo = m.loss(out)
    mean = (out.z[1] + out.z[2] + out.z[3]) / 3
    assert float(lo.loss) == pytest.approx(float(neg_cos(out.z[0], mean)), abs=1e-6)
    lo.loss.backward()
    assert torch.allclose(out.z[0].grad, cos_grad(out.z[0], mean), atol=1e-6)
    assert (out.z[1].grad is not None) == through


# --- BN + MSE (ZHANG App. B) --------------------------------------------------------------------
def test_bn_mse_is_plain_mse_with_gradient_on_both_views():
    za, zb = leaves(1, 2)
    lo = make("bn_mse").loss(Forward(z=[za, zb]))
    assert float(lo.loss) == pytest.approx(float(((za - zb) ** 2).sum() / za.numel()))
    lo.loss.backward()
    assert torch.allclose(za.grad, 2 * (za - zb).detach() / za.numel()) and torch.allclose(zb.grad, -za.grad)


# --- gradient surgery: target transforms (ZHANG §3.2-3.4) ---------------------------------------
def test_surgery_targets_match_the_decomposition():
    T, B = leaves(5, 6)
    T, B = T.detach(), B.detach()
    G = T - B
    o = torch.stack([G[:, j].sum() / G.shape[0] for j in range(G.shape[1])])
    assert torch.allclose(S.remove_center(T, B), B + G - o)
    assert torch.allclose(S.remove_residual(T, B), B + o.expand_as(B))
    assert torch.equal(S.remove_both(T, B), B)
    # removing o_e leaves a target whose batch mean equals the basic gradient's batch mean
    assert torch.allclose(S.remove_center(T, B).mean(0), B.mean(0))
    assert torch.allclose(S.remove_residual(T, B).mean(0), T.mean(0))
    for keep, want in [("both", T), ("o_e", B + o), ("r_e", B + G - o), ("none", B)]:
        assert torch.allclose(S.surgery_target(T, B, keep), want)


@pytest.mark.parametrize("keep", ["both", "o_e", "r_e", "none"])
def test_triplet_surgery_gradient_closed_form(keep):
    m = make("triplet_surgery", keep=keep)
    za, zb = leaves(1, 2, unit=True)
    neg = torch.tensor([3, 0, 4, 1, 2])
    with treat_norm_as_constant():
        m.loss(Forward(z=[za, zb], extra={"neg_index": neg})).loss.backward()
    b = zb.detach()
    zn = torch.stack([b[j] for j in neg.tolist()])
    o_e = -zn.sum(0) / 5
    target = {"both": b - zn, "o_e": b + o_e, "r_e": b - zn - o_e, "none": b}[keep]
    assert torch.allclose(za.grad, -target / 10)  # −∂L/∂Z_a = target / (2M)


def test_triplet_random_negative_is_never_the_sample_itself():
    from siamlab.methods.triplet import random_negatives as random_other

    torch.manual_seed(0)
    for m in (2, 3, 17):
        j = random_other(m, "cpu")
        assert (j != torch.arange(m)).all() and j.min() >= 0 and j.max() < m


@pytest.mark.parametrize("keep", ["both", "o_e", "r_e", "none"])
def test_simsiam_surgery_gradient_closed_form(keep):
    m = make("simsiam_surgery", keep=keep)
    za, zb, pa, pb = leaves(1, 2, 3, 4, unit=True)
    with treat_norm_as_constant():
        m.loss(Forward(z=[za, zb], p=[pa, pb])).loss.backward()
    Zb, Pb = zb.detach(), pb.detach()
    o_e = (Zb - Pb).mean(0)
    target = {"both": Zb, "o_e": Pb + o_e, "r_e": Zb - o_e, "none": Pb}[keep]
    assert torch.allclose(pa.grad, -target / 10)
    assert za.grad is None
    frame = m.gradient_frame(Forward(z=[za, zb], p=[pa, pb]))
    g_e = -pa.grad * frame.scale - Pb  # the extra gradient the diagnostics will read
    if keep == "r_e":
        assert torch.allclose(g_e.mean(0), torch.zeros(4, dtype=g_e.dtype), atol=1e-12)


def _infonce_reference_grad(za, zb, tau):
    """Anchor-side InfoNCE with detached candidates, written as cross-entropy (ZHANG eq. 5)."""
    a, b = za.detach().clone().requires_grad_(), zb.detach().clone().requires_grad_()
    cands = torch.cat([za, zb]).detach()
    m = za.shape[0]
    total = 0
    for anchors, pos_offset, self_offset in ((a, m, 0), (b, 0, m)):
        logits = anchors @ cands.T / tau
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask[torch.arange(m), torch.arange(m) + self_offset] = True
        total = total + 0.5 * F.cross_entropy(logits.masked_fill(mask, -math.inf), torch.arange(m) + pos_offset)
    total.backward()
    return a.grad


@pytest.mark.parametrize("keep", ["both", "o_e", "r_e", "none"])
def test_infonce_surgery_gradient_closed_form(keep):
    tau = 0.3
    m = make("infonce_surgery", keep=keep, temperature=tau)
    za, zb = leaves(1, 2, unit=True)
    with treat_norm_as_constant():
        m.loss(Forward(z=[za, zb])).loss.backward()
    A, B = za.detach(), zb.detach()
    cands = torch.cat([A, B])
    o_z = cands.mean(0)
    lam = torch.zeros(5, 10, dtype=A.dtype)
    for k in range(5):
        w = [0.0 if j == k else math.exp(float(A[k] @ cands[j]) / tau) for j in range(10)]
        lam[k] = torch.tensor(w, dtype=A.dtype) / sum(w)
    assert torch.allclose(lam.sum(1), torch.ones(5, dtype=A.dtype))
    weighted = lam @ cands
    target = {"both": B - weighted, "o_e": B - o_z, "r_e": B - (weighted - o_z), "none": B}[keep]
    assert torch.allclose(za.grad, -target / (10 * tau))
    if keep == "both":  # equals InfoNCE's own anchor gradient
        assert torch.allclose(za.grad, _infonce_reference_grad(za, zb, tau))


# --- Conjecture 1 probes (ZHANG Fig. 4) ---------------------------------------------------------
@pytest.mark.parametrize("name", ["conj_center", "conj_residual"])
def test_conjecture_gradients(name):
    za, zb = leaves(1, 2, unit=True)
    with treat_norm_as_constant():
        make(name).loss(Forward(z=[za, zb])).loss.backward()
    A = za.detach()
    o = A.sum(0) / A.shape[0]
    target = o.expand_as(A) if name == "conj_center" else A - o
    assert torch.allclose(za.grad, -target / 10)


# --- predictor zoo with SimSiam (ZHANG Table 5, §5) ----------------------------------------------
@pytest.mark.parametrize("kind", PREDICTORS)
def test_every_predictor_kind_trains_with_simsiam(kind):
    m = make("simsiam", predictor=kind, normalize_input=kind == "bias")
    losses = train_steps(m, lambda s: batch(seed=s))
    assert all(math.isfinite(v) for v in losses)


def test_tanh_fc_clamp_applied_after_every_step():
    m = make("simsiam", predictor="tanh_fc")
    w = m.predictor.net.weight
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for step in range(2):
        opt.zero_grad()
        m.loss(m(batch(seed=step))).loss.backward()
        opt.step()
        before = w.detach().clone()
        m.after_step(step, 2)
        assert torch.allclose(w.detach(), torch.tanh(before))


# --- phases (ZHANG Fig. 5b) ---------------------------------------------------------------------
def _third_phase() -> str:
    return "decorrelation" if "decorrelation" in available() else "conj_residual"


def phased_cfg(phases=None, epochs=8) -> RunConfig:
    cfg = RunConfig()
    cfg.optim.epochs = epochs
    cfg.phases = phases if phases is not None else [
        {"epoch": 0, "method": {"name": "simsiam", "predictor": "tanh_fc"}},
        {"epoch": 5, "method": {"name": "naive"}},
        {"epoch": 6, "method": {"name": _third_phase()}},
    ]
    return cfg


def test_phased_switches_at_the_right_epochs_and_shares_the_encoder():
    torch.manual_seed(0)
    enc = tiny_encoder()
    pm = build_phased(phased_cfg(), enc, MODEL)
    assert isinstance(pm, PhasedMethod) and all(m.encoder is enc for m in pm.phases)
    seen = []
    for epoch in range(8):
        pm.on_epoch_start(epoch)
        out = pm(batch(seed=epoch))
        lo = pm.total_loss(out)
        assert math.isfinite(float(lo.loss))
        seen.append(int(lo.terms["phase"]))
    assert seen == [0, 0, 0, 0, 0, 1, 2, 2]
    assert pm.predictor is None  # the active phase has none
    pm.on_epoch_start(0)
    assert pm.predictor is pm.phases[0].predictor


def test_phased_state_dict_keys_do_not_depend_on_the_phase():
    pm = build_phased(phased_cfg(), tiny_encoder(), MODEL)
    pm.on_epoch_start(6)
    fresh = build_phased(phased_cfg(), tiny_encoder(), MODEL)
    fresh.load_state_dict(pm.state_dict())  # strict
    assert all(torch.equal(a, b) for a, b in zip(fresh.encoder.parameters(), pm.encoder.parameters()))


def test_phased_param_groups_and_training_across_switches():
    torch.manual_seed(0)
    pm = build_phased(phased_cfg(epochs=3, phases=[
        {"epoch": 0, "method": {"name": "simsiam", "predictor": "tanh_fc"}},
        {"epoch": 1, "method": {"name": "naive"}},
        {"epoch": 2, "method": {"name": _third_phase()}},
    ]), tiny_encoder(), MODEL)
    ids = [id(p) for g in pm.param_groups() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(pm.parameters()))
    w = pm.phases[0].predictor.net.weight
    for epoch in range(3):
        pm.on_epoch_start(epoch)
        w_before = w.detach().clone()
        enc_before = [p.detach().clone() for p in pm.encoder.parameters()]
        assert all(math.isfinite(v) for v in train_steps(pm, lambda s: batch(seed=10 * epoch + s), steps=2))
        assert any(not torch.equal(a, b) for a, b in zip(enc_before, pm.encoder.parameters()))
        # the simsiam Tanh(FC) predictor is trained and clamped only in its own phase
        assert torch.equal(w.detach(), w_before) == (epoch > 0)


@pytest.mark.parametrize("phases, match", [
    ([{"epoch": 1, "method": {"name": "naive"}}], r"phases\[0\]\.epoch=1"),
    ([{"epoch": 0, "method": {"name": "naive"}}, {"epoch": 0, "method": {"name": "simsiam"}}], r"phases\[1\]\.epoch=0"),
    ([{"epoch": 0, "method": {"name": "naive"}}, {"epoch": 9, "method": {"name": "simsiam"}}], r"optim\.epochs=8"),
    ([{"epoch": 0, "method": {"name": "nope"}}], r"phases\[0\]\.method\.name 'nope'"),
    ([{"epoch": 0, "method": "simsiam"}], r"phases\[0\]\.method="),
    ([{"epoch": 0}], r"phases\[0\]="),
    ([{"epoch": 0, "method": {"name": "simsiam", "predictor": "wat"}}], r"method\.predictor='wat'"),
])
def test_phase_validation_errors(phases, match):
    with pytest.raises(ConfigError, match=match):
        build_phased(phased_cfg(phases), tiny_encoder(), MODEL)


# --- every setup trains end to end ----------------------------------------------------------------
SETUPS = [
    ("naive", {}), ("simsiam_nopred", {}), ("simsiam_nosg", {}),
    ("mirror", {"variant": "one_sided"}), ("mirror", {"variant": "symmetric"}),
    ("sympred", {"variant": "alg3"}), ("sympred", {"variant": "alg4"}), ("sympred", {"variant": "alternating"}),
    ("inverse", {}), ("bn_mse", {}), ("conj_center", {}), ("conj_residual", {}),
    ("triplet_surgery", {"keep": "o_e"}), ("simsiam_surgery", {"keep": "r_e"}),
    ("infonce_surgery", {"keep": "o_e", "temperature": 0.2}),
    ("eoa", {"mode": "same_batch"}), ("eoa", {"mode": "moving_average"}),
]


@pytest.mark.parametrize("name, params", SETUPS)
def test_setup_trains_with_finite_loss(name, params):
    m = make(name, **params)
    n_views = 4 if params.get("mode") == "same_batch" else 2
    m.bind_dataset(6)
    losses = train_steps(m, lambda s: batch(n=n_views, seed=s), index=torch.arange(6))
    assert all(math.isfinite(v) for v in losses)
    assert m.description and ("ZHANG" in m.reference or "CENTER" in m.reference)


@pytest.mark.parametrize("name, field, value", [
    ("mirror", "variant", "alg9"), ("sympred", "variant", "x"), ("sympred", "alternate_every", 0),
    ("eoa", "mode", "x"), ("eoa", "momentum", 1.0), ("triplet_surgery", "keep", "all"),
    ("infonce_surgery", "temperature", 0.0), ("simsiam_surgery", "predictor", "nope"),
])
def test_bad_params_name_the_field(name, field, value):
    with pytest.raises(ConfigError, match=rf"method\.{field}="):
        make(name, **{field: value})
