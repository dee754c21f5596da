"""Methods of zoo part B (barlow, vicreg, swav, wmse, bridge, decorrelation): registry and parameters,
a short training run on toy blobs, known properties, and purity of ``loss``.

No-collapse check used below: after 100 SGD steps on 4 Gaussian blobs in R^8 (views = sample + noise),
the mean per-dimension std of the l2-normalized z of 256 clean samples, times sqrt(d), must exceed 0.5
(about 0.8 at initialization, exactly 0 for a collapsed encoder). The projector has no final BN, so
the method itself must keep z spread. The control (BRIDGE without STD and without the covariance
term, Table 3's first row) must fall below 0.05 with the same check.
"""
import math

import pytest
import torch
from torch import nn

from siamlab.errors import ConfigError
from siamlab.methods import METHODS, build_params
from siamlab.models import Encoder
from siamlab.models.heads import unit_rows
import siamlab.methods.barlow  # noqa: F401  (register without importing other helpers' modules)
import siamlab.methods.bridge  # noqa: F401
import siamlab.methods.decorrelation  # noqa: F401
import siamlab.methods.swav  # noqa: F401
import siamlab.methods.vicreg  # noqa: F401
import siamlab.methods.wmse  # noqa: F401

NAMES = ("barlow", "vicreg", "swav", "wmse", "bridge", "decorrelation")
DIM, OUT = 8, 16


def blobs(n=512, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(k, DIM, generator=g)
    return centers[torch.randint(k, (n,), generator=g)] + 0.5 * torch.randn(n, DIM, generator=g)


def encoder(width=64):
    backbone = nn.Sequential(nn.Linear(DIM, width), nn.BatchNorm1d(width), nn.ReLU())
    projector = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, OUT))
    return Encoder(backbone, projector, OUT)


def make(name, **params):
    cls = METHODS[name]
    return cls(encoder(), build_params(cls.Params, params, name), None)


def batch_views(x, g, bs=128, n_views=2):
    idx = torch.randint(len(x), (bs,), generator=g)
    return [x[idx] + 0.3 * torch.randn(bs, DIM, generator=g) for _ in range(n_views)], idx


def train(method, steps=100, lr=0.05, seed=0):
    torch.manual_seed(seed)
    x, g = blobs(), torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.SGD(method.param_groups(), lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        views, idx = batch_views(x, g)
        lo = method.loss(method(views, idx))
        opt.zero_grad()
        lo.loss.backward()
        opt.step()
        method.after_step(step, steps)
        losses.append(lo.loss.item())
    return losses


def spread(method):
    """std of l2-normalized z over 256 clean samples, per dimension, averaged, times sqrt(d)."""
    with torch.no_grad():
        _, z = method.encoder(blobs()[:256])
    return unit_rows(z).std(dim=0).mean().item() * math.sqrt(z.shape[1])


WORKING = [
    ("barlow", {}, 0.05),
    ("barlow", {"off_diagonal": False}, 0.05),  # CENTER §3.3: the standardization alone prevents collapse
    ("vicreg", {}, 0.01),
    ("swav", {"num_prototypes": 30, "freeze_prototypes_steps": 0}, 0.05),
    ("swav", {"num_prototypes": 30, "prototypes": "fixed"}, 0.05),  # CENTER §3.4
    ("wmse", {"w_size": 64}, 0.05),
    ("bridge", {"k": 4}, 1e-3),
    ("bridge", {"k": 1, "predictor": "identity"}, 1e-3),  # I-PRED
]


@pytest.mark.parametrize("name,params,lr", WORKING)
def test_trains_without_collapse(name, params, lr):
    method = make(name, **params)
    before = [p.detach().clone() for p in method.encoder.parameters()]
    losses = train(method, lr=lr)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))
    assert spread(method) > 0.5


def test_collapse_control_bridge_without_std_and_cov():
    """BRIDGE Table 3, first row (Inv 1, Cov 0, no STD, no I-PRED, no StopGrad): COLLAPSE."""
    method = make("bridge", k=1, standardize=False, c_cov=0.0)
    train(method, lr=OUT * 1e-3)  # the invariance term is a mean over the d = OUT dimensions: the SGD path of the sum at 1e-3
    assert spread(method) < 0.05


def test_decorrelation_alone_trains():
    """De-correlation alone (ZHANG Fig. 5b phase 3): finite, decreasing, parameters move. No spread
    claim: a collapsed Z also has zero covariance, so this loss alone does not exclude collapse."""
    method = make("decorrelation")
    before = [p.detach().clone() for p in method.encoder.parameters()]
    losses = train(method, steps=30, lr=0.5)
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, method.encoder.parameters()))
    with_inv = make("decorrelation", invariance_weight=1.0)
    lo = with_inv.loss(with_inv(batch_views(blobs(), torch.Generator().manual_seed(0))[0]))
    assert set(lo.terms) == {"decor", "inv"}


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_metadata(name):
    cls = METHODS[name]
    assert cls.name == name and cls.description and cls.reference
    assert build_params(cls.Params, {}, name) == cls.Params()


@pytest.mark.parametrize("name,bad", [
    ("barlow", {"lambd": -1.0}), ("vicreg", {"gamma": 0.0}), ("swav", {"prototypes": "frozen"}),
    ("swav", {"sinkhorn_iterations": 0}), ("wmse", {"whitening": "pca"}), ("bridge", {"predictor": "mlp"}),
    ("bridge", {"k": 0}), ("bridge", {"inv_scale": "paper"}), ("decorrelation", {"invariance_weight": -1.0}),
])
def test_bad_params_raise_config_error(name, bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=f"method.{key}"):
        build_params(METHODS[name].Params, bad, name)


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_pure_and_differentiable_on_detached_leaves(name):
    """Diagnostics re-run ``loss`` on detached z: same value twice, gradient reaches the leaves, no state change."""
    method = make(name, **({"k": 4} if name == "bridge" else {"w_size": 64} if name == "wmse" else {}))
    views, idx = batch_views(blobs(), torch.Generator().manual_seed(3))
    out = method(views, idx)
    state = {k: v.clone() for k, v in method.state_dict().items()}
    leaves = [z.detach().requires_grad_() for z in out.z]
    first = method.loss(out.replace(z=leaves)).loss
    second = method.loss(out.replace(z=[z.detach() for z in leaves])).loss
    assert first.item() == second.item()
    first.backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in leaves)
    assert all(torch.equal(v, method.state_dict()[k]) for k, v in state.items())
    frame = method.gradient_frame(out)
    assert frame.anchor == ("z", 0) and frame.basic is None and frame.scale == 128


def test_swav_fixed_prototypes_never_change():
    method = make("swav", num_prototypes=30, prototypes="fixed")
    start = method.prototypes.clone()
    assert not any(p is method.prototypes for p in method.parameters())
    assert torch.allclose(start.norm(dim=1), torch.ones(30), atol=1e-6)
    train(method, steps=5)
    assert torch.equal(method.prototypes, start)


def test_swav_learnable_prototypes_frozen_then_trained_and_unit_norm():
    method = make("swav", num_prototypes=30, freeze_prototypes_steps=3)
    start = method.prototypes.detach().clone()
    train(method, steps=3)
    assert torch.allclose(method.prototypes, start, atol=1e-6)  # frozen: zero gradient, rows only rescaled
    assert method.prototypes.grad.abs().max() == 0
    train(method, steps=3)
    assert not torch.allclose(method.prototypes, start, atol=1e-3)
    assert torch.allclose(method.prototypes.norm(dim=1), torch.ones(30), atol=1e-6)
    assert [g["name"] for g in method.param_groups()] == ["encoder", "prototypes"]


def test_wmse_split_seed_follows_steps():
    method = make("wmse", w_size=64)
    views, idx = batch_views(blobs(), torch.Generator().manual_seed(4))
    assert method(views, idx).extra["w_seed"] == 0
    train(method, steps=2)
    assert method(views, idx).extra["w_seed"] == 2


def test_bridge_predictor_options():
    ipred = make("bridge", predictor="identity")
    assert ipred.predictor is None and [g["name"] for g in ipred.param_groups()] == ["encoder"]
    linear = make("bridge", predictor_bias=True)
    assert linear.predictor.linear_weight.shape == (OUT, OUT) and linear.predictor.last_bias is not None
    assert [g["name"] for g in linear.param_groups()] == ["encoder", "linear_predictor"]
    views, idx = batch_views(blobs(), torch.Generator().manual_seed(5), bs=20)
    with pytest.raises(ConfigError, match="method.k=8"):
        linear.loss(linear(views, idx))
