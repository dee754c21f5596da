"""Methods of zoo part A: training smoke runs, state updates against independent recursions, gradient
frames against the closed forms of ZHANG §3, and a small no-collapse check."""
import math

import pytest
import torch
from torch import nn

from siamlab.config import ModelConfig
from siamlab.errors import ConfigError
from siamlab.losses.functional import l2n, treat_norm_as_constant
from siamlab.methods import get
from siamlab.methods.base import build_params
from siamlab.methods.directpred import directpred_weight
from siamlab.models import Encoder

SMALL = {"moco": {"queue_size": 32}, "dino": {"out_dim": 32}}
PART_A = ("simclr", "triplet", "byol", "moco", "dino", "directpred", "center")


def make_encoder(din=8, hid=32, d=16):
    backbone = nn.Sequential(nn.Linear(din, hid), nn.ReLU())
    backbone.out_dim = hid
    projector = nn.Sequential(nn.Linear(hid, hid), nn.ReLU(), nn.Linear(hid, d))
    return Encoder(backbone, projector, d)


def build(name, seed=0, **params):
    torch.manual_seed(seed)
    cls = get(name)
    given = {**SMALL.get(name, {}), **params}
    return cls(make_encoder(), build_params(cls.Params, given, name), ModelConfig(pred_hidden=16))


def blobs(n=512, k=4, din=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, din, generator=g) * 3
    y = torch.randint(0, k, (n,), generator=g)
    return centers[y] + torch.randn(n, din, generator=g)


def optimizer(method, lr=0.05):
    return torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=lr, momentum=0.9)


def train(method, steps, bs=32, noise=0.3, seed=0, record=None):
    """SGD on blob vectors, views = x + Gaussian noise; ``record`` (a list) receives every Forward."""
    x = blobs(seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    opt = optimizer(method)
    method.train()
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (bs,), generator=g)]
        views = [xb + noise * torch.randn(xb.shape, generator=g) for _ in range(2)]
        out = method(views)
        loss = method.loss(out).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(step, steps)
        if record is not None:
            record.append(out)
    return x, loss


@pytest.mark.parametrize("name", PART_A)
def test_trains_a_few_steps(name):
    method = build(name)
    trained = [p for g in method.param_groups() for p in g["params"]]
    before = [p.detach().clone() for p in trained]
    _, loss = train(method, 3)
    assert torch.isfinite(loss)
    assert all(p.requires_grad for p in trained)
    assert any(not torch.equal(a, b) for a, b in zip(before, trained))
    assert get(name).description and get(name).reference


@pytest.mark.parametrize("name", PART_A)
def test_loss_is_pure_after_the_step(name):
    """Re-running loss on a recorded Forward gives the same value, also after after_step changed the state."""
    method = build(name)
    train(method, 2)
    out = method([torch.randn(8, 8), torch.randn(8, 8)])
    first = method.loss(out).loss.item()
    assert method.loss(out).loss.item() == first
    method.after_step(2, 10)  # EMA / queue / center / W_p updates must not reach the recorded step
    assert method.loss(out).loss.item() == first


def test_bad_params_raise_one_sentence_config_errors():
    cases = [("simclr", {"tau": 0}), ("byol", {"predictor": "cube"}), ("moco", {"queue_size": 0}),
             ("dino", {"student_temp": -1.0}), ("directpred", {"freq": 0}), ("center", {"invariance": "l1"})]
    for name, bad in cases:
        with pytest.raises(ConfigError, match=f"method.{next(iter(bad))}="):
            build_params(get(name).Params, bad, name)


def test_byol_target_is_the_ema_of_the_online_weights():
    """Independent recursion ξ_k = τ_k ξ_{k−1} + (1 − τ_k) θ_k, τ_k = 1 − (1 − b)(cos(πk/K) + 1)/2."""
    method = build("byol", momentum=0.9)
    steps, base = 5, 0.9
    xi = [p.detach().clone() for p in method.encoder.parameters()]
    x = blobs()
    opt = optimizer(method)
    for k in range(steps):
        views = [x[:16] + 0.3 * torch.randn(16, 8) for _ in range(2)]
        loss = method.loss(method(views)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(k, steps)
        tau = 1 - (1 - base) * (math.cos(math.pi * k / steps) + 1) / 2
        xi = [tau * a + (1 - tau) * b.detach() for a, b in zip(xi, method.encoder.parameters())]
    for a, b in zip(xi, method.target.parameters()):
        torch.testing.assert_close(a, b)
    assert not any(p.requires_grad for p in method.target.parameters())


def test_moco_queue_is_fifo_of_the_last_keys():
    method = build("moco", queue_size=20)
    record = []
    train(method, 4, bs=8, record=record)  # 32 keys through a queue of 20
    keys = torch.cat([l2n(out.targets[1]) for out in record])
    ptr = int(method.queue_ptr)
    assert ptr == 32 % 20
    oldest_first = torch.roll(method.queue, -ptr, dims=0)
    torch.testing.assert_close(oldest_first, keys[-20:])
    # a record keeps the queue it was computed with: the step-0 record holds the initial random queue
    assert not torch.allclose(record[0].extra["queue"][:8], keys[:8])
    torch.testing.assert_close(record[1].extra["queue"][:8], keys[:8])


def test_dino_center_follows_its_ema():
    method = build("dino", center_momentum=0.8)
    record = []
    train(method, 4, bs=8, record=record)
    center = torch.zeros(32)
    for out in record:
        torch.testing.assert_close(out.extra["center"], center)  # the loss used the center before the update
        center = 0.8 * center + 0.2 * torch.cat(out.targets).mean(0)
    torch.testing.assert_close(method.center, center)


def test_dino_teacher_temperature_warmup():
    method = build("dino", warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_epochs=3)
    temps = []
    for epoch in range(5):
        method.on_epoch_start(epoch)
        temps.append(method([torch.randn(4, 8), torch.randn(4, 8)]).extra["teacher_temp"])
    assert temps == pytest.approx([0.02, 0.04, 0.06, 0.06, 0.06])


def test_directpred_predictor_is_set_symmetric_psd():
    method = build("directpred", rho=0.3, eps=0.1)
    assert not any(p.requires_grad for p in method.predictor.parameters())
    record = []
    train(method, 4, bs=16, record=record)
    corr = None
    for out in record:  # independent EMA of E[zzᵀ] over both views, first estimate taken as is
        z = torch.cat([z.detach() for z in out.z])
        batch = z.T @ z / z.shape[0]
        corr = batch if corr is None else 0.3 * corr + 0.7 * batch
    torch.testing.assert_close(method.corr, corr)
    w = method.predictor.linear_weight.detach()
    torch.testing.assert_close(w, w.T, rtol=0, atol=0)
    assert torch.linalg.eigvalsh(w).min() > 0.1 - 1e-5
    torch.testing.assert_close(w, directpred_weight(corr, 0.1))


def _frame_parts(method, out):
    """scale·(−∂L/∂anchor) on the normalized anchor and the normalized basic tensor (ZHANG §3.2)."""
    frame = method.gradient_frame(out)
    field, i = frame.anchor
    leaves = {k: [t.detach().clone() for t in getattr(out, k)] for k in ("z", "p", "targets") if getattr(out, k)}
    leaves[field][i] = l2n(leaves[field][i]).requires_grad_()
    rec = out.replace(**leaves)
    with treat_norm_as_constant():
        method.loss(rec).loss.backward()
    g = -leaves[field][i].grad * frame.scale
    basic = l2n(getattr(rec, frame.basic[0])[frame.basic[1]])
    return g, basic, rec


def test_gradient_frames_match_zhang_closed_forms():
    x = torch.randn(10, 8)
    views = [x + 0.1 * torch.randn(10, 8), x + 0.1 * torch.randn(10, 8)]
    # SimCLR: G_e = −½(Σ_j λ_aj Z_j + Σ_k λ_ka Z_k), ZHANG eq. 6 with Z_a also a key of the others
    method = build("simclr")
    g, basic, rec = _frame_parts(method, method(views))
    lam = method.weights(rec)
    zall = l2n(torch.cat(rec.z))
    torch.testing.assert_close(g - basic, -0.5 * (lam[:10] @ zall + lam[:, :10].T @ zall))
    # triplet: G_e = −Z_n (ZHANG §3.3)
    method = build("triplet")
    out = method(views)
    g, basic, rec = _frame_parts(method, out)
    torch.testing.assert_close(g - basic, -l2n(rec.z[1][out.extra["neg_index"][0]]))
    # BYOL: scale·(−∂L/∂P_a) = T_b, i.e. basic P_b plus G_e = T_b − P_b (as SimSiam, ZHANG eq. 4)
    method = build("byol")
    g, basic, rec = _frame_parts(method, method(views))
    torch.testing.assert_close(g, l2n(rec.targets[1]))
    # MoCo: basic K_b, G_e = −Σ_i λ_i Z_i over the key and the queue (ZHANG eq. 6)
    method = build("moco")
    out = method(views)
    g, basic, rec = _frame_parts(method, out)
    cands = torch.stack([torch.cat([l2n(k)[None], l2n(out.extra["queue"])]) for k in rec.targets[1]])
    lam = torch.softmax(torch.einsum("nkd,nd->nk", cands, rec.z[0]) / method.params.tau, dim=1)
    torch.testing.assert_close(g - basic, -torch.einsum("nk,nkd->nd", lam, cands))
    # CENTER (cosine): G_e = (λ_L/2)·s/‖s‖
    method = build("center", lambda_l=-1.0)
    g, basic, rec = _frame_parts(method, method(views))
    s = torch.cat([rec.z[0], l2n(rec.z[1])]).mean(0)
    torch.testing.assert_close(g - basic, (-0.5 * s / s.norm()).expand_as(g))


def _std(method, x):
    method.eval()
    z = method.embed(x)["projector"]
    return (l2n(z).std(dim=0).mean() * math.sqrt(z.shape[1])).item()


@pytest.mark.parametrize("name", PART_A)
def test_no_collapse_on_blobs(name):
    """200 SGD steps (batch 32, views = x + N(0, 0.3²)) on 4 Gaussian blobs in R^8, encoder without BN.
    Check: std of l2-normalized z over the clean data × sqrt(d) > 0.4 (≈ 0.55 untrained; 0.5-1.0 observed
    after training). The control below shows that the check can fail."""
    method = build(name)
    x, _ = train(method, 200)
    assert _std(method, x) > 0.4


def test_no_collapse_control_collapses():
    """Control: CENTER with λ_L = 0 is the invariance loss alone (no predictor, no stop-gradient, no center
    penalty); after 400 steps of the same run its std × sqrt(d) falls below 0.3 (≈ 0.19 observed)."""
    method = build("center", lambda_l=0.0)
    x, _ = train(method, 400)
    assert _std(method, x) < 0.3
