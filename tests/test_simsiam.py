"""SimSiam loss (ZHANG eq. 2): a hand-computed value, finite-difference gradients, stop-gradient wiring."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from siamlab import config
from siamlab.losses.cosine import negative_cosine, simsiam_loss
from siamlab.methods import build_method
from siamlab.models import Encoder


def pytest_approx(x, tol=1e-6):
    return pytest.approx(x, abs=tol)


def test_negative_cosine_hand_value():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[4.0, 3.0], [0.0, 2.0]])
    # cos = 24/25 and 0 → −mean = −0.48
    assert negative_cosine(a, b).item() == pytest_approx(-0.48)


def test_simsiam_loss_hand_value():
    p1 = torch.tensor([[1.0, 0.0]])
    p2 = torch.tensor([[0.0, 1.0]])
    z1 = torch.tensor([[1.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0]])
    # −½[cos(p1, z2) + cos(p2, z1)] = −½[1 + 1/√2]
    assert simsiam_loss(p1, p2, z1, z2).item() == pytest_approx(-0.5 * (1 + 1 / math.sqrt(2)))


def test_simsiam_loss_gradient_matches_finite_differences():
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(4))
    # only p receives gradient: z is stop-gradient'ed inside the loss
    assert torch.autograd.gradcheck(lambda a, b: simsiam_loss(a, b, z1, z2), (p1, p2))
    loss = simsiam_loss(p1, p2, z1, z2)
    loss.backward()
    assert z1.grad is None and z2.grad is None


def test_gradient_on_unit_p_is_the_projected_target():
    """−∂L/∂p_a = (1/2M)·(Z_b − (P_a·Z_b)P_a)/‖p_a‖, derived by hand from L = −½ mean P_a·Z_b."""
    torch.manual_seed(1)
    p1 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    p2, z1, z2 = (torch.randn(3, 4, dtype=torch.float64) for _ in range(3))
    simsiam_loss(p1, p2, z1, z2).backward()
    P, Z = p1.detach() / p1.detach().norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    expected = -(Z - (P * Z).sum(1, keepdim=True) * P) / p1.detach().norm(dim=1, keepdim=True) / (2 * 3)
    assert torch.allclose(p1.grad, expected)


def test_simsiam_method_stop_gradient_and_predictor_wiring():
    """All of the gradient on z reaches it through the predictor path: with P detached, z gets none."""
    torch.manual_seed(0)
    cfg = config.load(None, ["method.name=simsiam", "model.pred_hidden=4"])
    enc = Encoder(nn.Sequential(nn.Linear(3, 8)), nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6)), 6)
    m = build_method(cfg.method, enc, cfg.model)
    out = m([torch.randn(8, 3), torch.randn(8, 3)])
    m.loss(out).loss.backward()
    assert all(p.grad is not None for p in m.predictor.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters() if p.ndim > 1)
    zs = [z.detach().requires_grad_() for z in out.z]
    ps = [m.predictor(z).detach() for z in zs]
    loss = m.loss(out.replace(z=zs, p=ps)).loss
    assert not loss.requires_grad  # targets sg(z) and detached p: nothing left to differentiate
    ps = [m.predictor(z) for z in zs]
    m.loss(out.replace(z=zs, p=ps)).loss.backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in zs)
