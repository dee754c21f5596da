"""Evaluation: weighted kNN, probes, GEN's NCM and bound, feature extraction (SPEC §3)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from siamlab.config import EvalConfig
from siamlab.errors import ConfigError, DataError
from siamlab.eval import evaluate, extract_features, gen_bound, knn_accuracy, linear_probe, ncm_accuracy
from siamlab.eval import knn as knn_module
from siamlab.eval.linear import OnlineProbe
from siamlab.eval.ncm import class_diameter_eps, l_cor


def blobs(n_per_class, num_classes, dim, noise, seed):
    """Gaussian clusters around orthogonal directions: class c is near 5 * e_c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = 5.0 * torch.eye(dim)[y] + noise * torch.randn(len(y), dim, generator=g)
    return x, y


# --- kNN -----------------------------------------------------------------------------------------

def knn_bruteforce(train_f, train_y, test_f, num_classes, k, t):
    """Predictions by an explicit loop (Wu et al. 2018 weighting), written without torch."""
    tr = np.asarray(train_f, dtype=np.float64)
    tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
    preds = []
    for q in np.asarray(test_f, dtype=np.float64):
        q = q / np.linalg.norm(q)
        sims = [float(np.dot(q, row)) for row in tr]
        order = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
        votes = [0.0] * num_classes
        for j in order:
            votes[int(train_y[j])] += math.exp(sims[j] / t)
        preds.append(int(np.argmax(votes)))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.1), (7, 0.07), (25, 0.5), (500, 0.1)])
def test_knn_matches_bruteforce_loop(k, t, monkeypatch):
    monkeypatch.setattr(knn_module, "_SIM_BUDGET", 7 * 60)  # force several test chunks
    g = torch.Generator().manual_seed(k)
    train_f, test_f = torch.randn(60, 8, generator=g), torch.randn(40, 8, generator=g)
    train_y = torch.randint(0, 5, (60,), generator=g)
    test_y = torch.randint(0, 5, (40,), generator=g)
    expected = knn_bruteforce(train_f, train_y, test_f, 5, min(k, 60), t)
    assert knn_accuracy(train_f, train_y, test_f, expected, 5, k=k, t=t) == 100.0
    want = 100.0 * float((expected == test_y).double().mean())
    assert knn_accuracy(train_f, train_y, test_f, test_y, 5, k=k, t=t) == pytest.approx(want)


def test_knn_is_scale_invariant_and_weighted():
    # One close neighbour of class 1 outvotes two far ones of class 0 only thanks to exp(s/T).
    train_f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]) * torch.tensor([[3.0], [0.5], [2.0]])
    train_y = torch.tensor([1, 0, 0])
    test_f = torch.tensor([[0.9, 0.45]])  # cos to class 1 ≈ 0.894, to class 0 ≈ 0.447
    assert knn_accuracy(train_f, train_y, test_f, torch.tensor([1]), 2, k=3, t=0.1) == 100.0
    # With a large temperature the weights are nearly uniform and the two class-0 votes win.
    assert knn_accuracy(train_f, train_y, test_f, torch.tensor([0]), 2, k=3, t=100.0) == 100.0


def test_knn_separable_clusters_is_perfect():
    train_f, train_y = blobs(50, 4, 16, 0.5, seed=0)
    test_f, test_y = blobs(25, 4, 16, 0.5, seed=1)
    assert knn_accuracy(train_f, train_y, test_f, test_y, 4) == 100.0  # k=200 = every train sample


def test_knn_random_labels_is_chance():
    g = torch.Generator().manual_seed(0)
    train_f, test_f = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    train_y, test_y = torch.randint(0, 10, (2000,), generator=g), torch.randint(0, 10, (2000,), generator=g)
    assert 6.0 < knn_accuracy(train_f, train_y, test_f, test_y, 10, k=20) < 14.0


def test_knn_bad_input_raises_one_sentence_errors():
    f, y = torch.randn(10, 3), torch.zeros(10, dtype=torch.int64)
    with pytest.raises(ConfigError, match="eval.knn_k=0"):
        knn_accuracy(f, y, f, y, 2, k=0)
    with pytest.raises(ConfigError, match="eval.knn_t"):
        knn_accuracy(f, y, f, y, 2, t=0.0)
    with pytest.raises(DataError, match="num_classes=2"):
        knn_accuracy(f, y + 2, f, y, 2)
    with pytest.raises(DataError, match="same D"):
        knn_accuracy(f, y, torch.randn(10, 4), y, 2)


# --- online and offline linear probes ------------------------------------------------------------

def test_online_probe_learns_and_never_touches_the_encoder():
    torch.manual_seed(0)
    encoder = nn.Linear(8, 8)
    x, y = blobs(64, 4, 8, 0.5, seed=2)
    probe = OnlineProbe(8, 4, lr=0.1)
    before_probe = probe.fc.weight.detach().clone()
    before_encoder = encoder.weight.detach().clone()
    encoder.weight.grad = torch.full_like(encoder.weight, 0.25)  # pending encoder gradient
    for _ in range(60):
        h = encoder(x)  # carries gradient to the encoder
        stats = probe.step(h, y)
    assert torch.equal(encoder.weight, before_encoder)
    assert torch.equal(encoder.weight.grad, torch.full_like(encoder.weight, 0.25))
    assert encoder.bias.grad is None
    assert not torch.equal(probe.fc.weight, before_probe)
    assert set(stats) == {"loss", "acc"} and stats["acc"] > 95.0
    assert probe.accuracy(encoder(x), y) > 95.0


def test_offline_probe_separable_and_deterministic():
    train_f, train_y = blobs(100, 5, 32, 1.0, seed=3)
    test_f, test_y = blobs(40, 5, 32, 1.0, seed=4)
    a = linear_probe(train_f, train_y, test_f, test_y, 5, epochs=20, seed=1)
    b = linear_probe(train_f, train_y, test_f, test_y, 5, epochs=20, seed=1)
    assert a == b
    assert a["top1"] > 90.0 and a["top5"] == 100.0 and a["train_top1"] > 90.0


def test_offline_probe_matches_logistic_regression_on_overlapping_classes():
    from sklearn.linear_model import LogisticRegression

    train_f, train_y = blobs(200, 3, 6, 3.0, seed=5)
    test_f, test_y = blobs(200, 3, 6, 3.0, seed=6)
    ours = linear_probe(train_f, train_y, test_f, test_y, 3, epochs=30)["top1"]
    ref = LogisticRegression(C=1e4, max_iter=2000).fit(train_f.numpy(), train_y.numpy())
    theirs = 100.0 * ref.score(test_f.numpy(), test_y.numpy())
    assert 60.0 < theirs < 95.0  # the problem is neither trivial nor hopeless
    assert abs(ours - theirs) < 2.5


# --- GEN: nearest class mean and the Theorem 3 bound ---------------------------------------------

def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_ncm_hand_example_euclidean_vs_cosine():
    # Class 0: one point at 0° -> μ0 = (1, 0). Class 1: points at 10° and 170° -> μ1 = (0, sin 10°).
    # Test at 50°: ‖f−μ0‖² = 2 − 2cos50 = 0.714 < ‖f−μ1‖² = 1 + sin²10 − 2 sin10 sin50 = 0.764 -> 0,
    # while cos(f, μ1) = sin50 > cos(f, μ0) = cos50 -> 1. At 20° both say 0, at 80° both say 1.
    train_f = torch.tensor([unit(0), unit(10), unit(170)]) * torch.tensor([[2.0], [0.3], [7.0]])
    train_y = torch.tensor([0, 1, 1])
    test_f = torch.tensor([unit(20), unit(50), unit(80)])
    test_y = torch.tensor([0, 1, 1])
    assert ncm_accuracy(train_f, train_y, test_f, test_y, 2) == pytest.approx(200.0 / 3.0)
    assert ncm_accuracy(train_f, train_y, test_f, test_y, 2, metric="cosine") == 100.0
    assert ncm_accuracy(train_f, train_y, test_f, torch.tensor([0, 0, 1]), 2) == 100.0


def test_ncm_never_predicts_a_class_absent_from_training():
    train_f, train_y = torch.tensor([unit(0), unit(90)]), torch.tensor([0, 1])
    # Class 2 has no mean; were it taken as the origin it would be the nearest one (distance r).
    test_f = torch.tensor([unit(180), unit(-90)])
    assert ncm_accuracy(train_f, train_y, test_f, torch.tensor([1, 0]), 3) == 100.0
    # Cosine at 200°: cos(f, μ0) = cos 200° = −0.94, cos(f, μ1) = sin 200° = −0.34; an origin mean would score 0.
    assert ncm_accuracy(train_f, train_y, torch.tensor([unit(200)]), torch.tensor([1]), 3, metric="cosine") == 100.0
    with pytest.raises(ConfigError, match="metric"):
        ncm_accuracy(train_f, train_y, test_f, torch.tensor([1, 0]), 3, metric="manhattan")


@pytest.mark.parametrize(
    "feats,lcor",
    [
        ([[1, 0], [0, 1]], 0.0),  # Λ = 2·diag(1/2, 1/2) = I
        ([[3, 0], [0.5, 0]], 2.0),  # Λ = diag(2, 0)
        ([[1, 0], [2, 0], [0, 1]], 2.0 / 9.0),  # Λ = diag(4/3, 2/3)
        ([[1, 1], [1, -1]], 0.0),  # f = (1, ±1): Λ = I
        ([[1, 1]], 2.0),  # Λ = all-ones
    ],
)
def test_l_cor_on_hand_values(feats, lcor):
    assert l_cor(torch.tensor(feats, dtype=torch.float32)) == pytest.approx(lcor, abs=1e-6)


def test_l_cor_matches_gram_formulation():
    # tr Λ = d, so ‖Λ − I‖² = ‖Λ‖² − d, and ‖Λ‖² = d²/N² Σ_ab (ẑ_a·ẑ_b)² (‖ZᵀZ‖_F = ‖ZZᵀ‖_F).
    z = np.random.default_rng(0).normal(size=(30, 5)) + 0.7
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    d, n = 5, 30
    expected = d**2 / n**2 * float(((zn @ zn.T) ** 2).sum()) - d
    assert l_cor(torch.tensor(z)) == pytest.approx(expected, rel=1e-10)


def test_gen_bound_formulas_on_hand_values():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = gen_bound(feats, torch.tensor([0, 1]), num_classes=3, eps=0.1)
    assert out["l_cor"] == pytest.approx(0.0, abs=1e-12)
    assert out["l_bound"] == pytest.approx((3 - 2) / 4)  # GEN eq. 11 with ‖Λ − I‖ = 0
    assert out["class_mass"] == pytest.approx(0.5)  # p = (1/2, 1/2, 0)
    assert out["theorem3"] == pytest.approx((0.25 + 2 * 0.1**4) / (0.5 * 0.61**2))
    collapsed = gen_bound(torch.tensor([[2.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]), 2, eps=0.0)
    assert collapsed["l_bound"] == pytest.approx(2 / 4 * 2.0)  # Λ = diag(2, 0), K = d
    assert collapsed["theorem3"] == pytest.approx(1.0 / 0.5)
    near_singular = gen_bound(feats, torch.tensor([0, 1]), 2, eps=2 - math.sqrt(3))  # 1 − 4ε + ε² ≈ 0
    assert near_singular["theorem3"] > 1e20
    one_class = gen_bound(feats, torch.tensor([1, 1]), 2, eps=0.0)  # 1 − Σ p_i² = 0
    assert one_class["class_mass"] == 0.0 and one_class["theorem3"] == math.inf


def test_eps_is_the_largest_same_class_distance_on_the_unit_sphere():
    feats = torch.tensor([unit(0), unit(90), unit(0), unit(60)]) * 4.0
    assert class_diameter_eps(feats, torch.tensor([0, 0, 1, 1])) == pytest.approx(math.sqrt(2.0))
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    zn = z.double().numpy()
    zn = zn / np.linalg.norm(zn, axis=1, keepdims=True)
    brute = max(
        float(np.linalg.norm(zn[a] - zn[b])) for a in range(40) for b in range(40) if y[a] == y[b]
    )
    assert class_diameter_eps(z, y) == pytest.approx(brute, rel=1e-9)
    assert gen_bound(z, y, 3)["eps"] == pytest.approx(brute, rel=1e-9)


# --- feature extraction and the evaluate() entry point -------------------------------------------

class FakeMethod(nn.Module):
    """embed returns the input and a fixed linear map of it; records what it saw."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.proj = nn.Linear(dim, out_dim)
        self.teacher = nn.Linear(dim, dim)  # kept in eval mode on purpose
        self.calls = []

    def embed(self, x):
        self.calls.append((x.shape[0], self.training, self.proj.training, torch.is_grad_enabled()))
        return {"backbone": x, "projector": self.proj(x)}


class FakeAugment:
    def clean(self, x):
        return x.float() / 255.0


def test_extract_features_eval_mode_no_grad_order_and_restore():
    method = FakeMethod(3, 2)
    method.train()
    method.teacher.eval()
    ds = SimpleNamespace(x=torch.randint(0, 256, (10, 3), dtype=torch.uint8), name="fake")
    feats = extract_features(method, ds, FakeAugment(), batch_size=4)
    assert [c[0] for c in method.calls] == [4, 4, 2]
    assert all(not training and not proj and not grad for _, training, proj, grad in method.calls)
    assert method.training and method.proj.training and not method.teacher.training
    assert set(feats) == {"backbone", "projector"}
    expected = ds.x.float() / 255.0
    assert feats["backbone"].dtype == torch.float32 and torch.equal(feats["backbone"], expected)
    with torch.no_grad():
        assert torch.allclose(feats["projector"], method.proj(expected))
    assert not feats["projector"].requires_grad
    with pytest.raises(DataError, match="no samples"):
        extract_features(method, SimpleNamespace(x=torch.zeros(0, 3), name="empty"), FakeAugment())


def test_evaluate_reports_every_feature_name():
    x_train, y_train = blobs(30, 3, 6, 0.3, seed=7)
    x_test, y_test = blobs(10, 3, 6, 0.3, seed=8)
    shift = lambda x: (x * 20 + 128).clamp(0, 255)  # noqa: E731  float "images" the fake augment rescales
    train = SimpleNamespace(x=shift(x_train), y=y_train, num_classes=3, name="train")
    test = SimpleNamespace(x=shift(x_test), y=y_test, num_classes=3, name="test")

    class Centered(FakeAugment):
        def clean(self, x):
            return (x - 128) / 20

    torch.manual_seed(0)
    out = evaluate(FakeMethod(6, 4), train, test, Centered(), EvalConfig(knn_k=20, knn_t=0.1), batch_size=16)
    names = {f"{m}_{f}" for m in ("knn", "ncm", "gen_bound", "l_bound", "l_cor", "gen_eps") for f in ("backbone", "projector")}
    assert set(out) == names and all(isinstance(v, float) for v in out.values())
    assert out["knn_backbone"] == 100.0 and out["ncm_backbone"] == 100.0
    assert out["l_cor_backbone"] == pytest.approx(l_cor(x_test), rel=1e-4)
    assert out["l_bound_backbone"] == pytest.approx(2 / 36 * out["l_cor_backbone"] + (3 - 6) / 36, rel=1e-6)
