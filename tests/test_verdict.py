"""The collapse verdict (siamlab.analysis.verdict) on constructed embeddings: complete collapse, dimensional
collapse (rank-1 and rank-k outputs), collapse of the tensor the loss acts on (P), and healthy outputs.

Histories are built the way the engine builds them: diag rows from the live metrics of a batch, the eval
row from LiveDiagnostics.representation_metrics on clean features — so the rule is tested on the numbers
a run would log, not on hand-written ones.
"""
from __future__ import annotations

import math

import pytest
import torch

from siamlab.analysis import metrics as M
from siamlab.analysis.live import LiveDiagnostics
from siamlab.analysis.verdict import collapse_margin, erank_threshold, explain, verdicts

K = 10  # classes, as Fashion-MNIST


def history(z: torch.Tensor, p: torch.Tensor = None, loss_on_p: bool = False, classes: int = K) -> list:
    rows = []
    for step in (10, 20, 30):
        row = {"kind": "diag", "step": step, "epoch": step / 10, "std_scaled": float(M.std_scaled(z)), "m_r": float(M.m_r(z)),
               "m_o": float(M.m_o(z))}
        if p is not None:
            row.update(p_std_scaled=float(M.std_scaled(p)), p_m_r=float(M.m_r(p)), p_m_o=float(M.m_o(p)), loss_on_p=float(loss_on_p))
        rows.append(row)
    labels = torch.arange(z.shape[0]) % classes
    ev = LiveDiagnostics(torch.nn.Identity(), 0).representation_metrics({"projector": z}, labels, classes)
    rows.append({"kind": "eval", "step": 30, "epoch": 3, **ev})
    return rows


def gaussian(n=2000, d=64, seed=0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def rank_k(k: int, n=2000, d=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, k, generator=g))[0]  # k orthonormal directions in d dims
    return torch.randn(n, k, generator=g) @ basis.T


def test_isotropic_gaussian_is_not_collapsed():
    v = verdicts(history(gaussian()), "completed")
    assert v["verdict"] == "not collapsed"
    assert v["collapsed"] is False and v["complete"] is False and v["dimensional"] is False and v["loss_tensor"] is None
    assert v["std_scaled"] > 0.9 and v["erank"] > 55 and v["dim"] == 64 and v["classes"] == K


def test_identical_vectors_are_completely_collapsed():
    z = torch.randn(1, 64).repeat(2000, 1)
    v = verdicts(history(z), "completed")
    assert v["verdict"] == "collapsed" and v["collapsed"] is True and v["complete"] is True
    assert v["std_scaled"] == pytest.approx(0.0, abs=1e-9) and v["m_r"] == pytest.approx(0.0, abs=1e-9)


def test_rank_one_embedding_is_a_dimensional_collapse_not_a_complete_one():
    z = rank_k(1)
    v = verdicts(history(z), "completed")
    # Z = ±v: two antipodal points, spread on the sphere (√d·std ≈ 0.8, m_r ≈ 1) — the old rule said "trains"
    assert v["complete"] is False and v["std_scaled"] > 0.5
    assert v["dimensional"] is True and v["erank"] == pytest.approx(1.0, abs=1e-3)
    assert v["verdict"] == "dimensional collapse" and v["collapsed"] is False


@pytest.mark.parametrize("k, expected", [(2, True), (4, True), (8, True), (16, False), (32, False)])
def test_rank_k_embedding_against_k_minus_one(k, expected):
    v = verdicts(history(rank_k(k)), "completed")
    assert v["erank_min"] == K - 1
    assert v["erank"] == pytest.approx(k, rel=0.1)  # equal-variance directions: effective rank ≈ k
    assert v["dimensional"] is expected
    assert v["verdict"] == ("dimensional collapse" if expected else "not collapsed")


def test_narrow_outputs_are_judged_against_half_their_dimensions():
    assert erank_threshold(8, 10) == 4 and erank_threshold(256, 10) == 9 and erank_threshold(16, 3) == 2
    assert erank_threshold(None, 10) == 2 and erank_threshold(4, 10) == 2
    assert verdicts(history(gaussian(d=8)), "completed")["dimensional"] is False
    assert verdicts(history(rank_k(2, d=8)), "completed")["dimensional"] is True


def test_healthy_z_with_collapsed_p_is_collapsed_when_the_loss_acts_on_p():
    z = gaussian()
    p = torch.randn(1, 64).repeat(2000, 1) + 1e-3 * gaussian(seed=1)  # P ≈ one vector (ZHANG Table 4, no o_e, no r_e)
    v = verdicts(history(z, p, loss_on_p=True), "completed")
    assert v["complete"] is False and v["loss_tensor"] is True and v["collapsed"] is True
    assert v["verdict"] == "collapsed (predictor output P)" and v["p_std_scaled"] < 0.1
    # the same P when the loss acts on Z (Mirror SimSiam: P is only a target): not the loss's tensor
    v = verdicts(history(z, p, loss_on_p=False), "completed")
    assert v["loss_tensor"] is None and v["verdict"] == "not collapsed"


def test_healthy_p_passes_and_divergence_wins():
    z, p = gaussian(), gaussian(seed=2)
    v = verdicts(history(z, p, loss_on_p=True), "completed")
    assert v["loss_tensor"] is False and v["verdict"] == "not collapsed"
    hist = history(z) + [{"kind": "train", "step": 40, "epoch": 4, "loss": "nan"}]
    assert verdicts(hist, "completed")["verdict"] == "diverged"


def test_no_records_is_unknown_and_explain_names_the_evidence():
    assert verdicts([], "completed")["verdict"] == "unknown"
    v = verdicts(history(rank_k(4)), "completed")
    text = explain(v)
    assert "effective rank=" in text and "needs ≥ 9" in text and "K=10" in text and "√d·std(Z)=" in text
    assert math.isfinite(v["sigma_i"])


def test_collapse_margin_is_the_distance_to_complete_collapse_in_decades():
    """log10 of the smallest indicator over its threshold (√d·std/0.1, m_r/0.05; on P where the loss acts on P),
    clipped to ±2; negative when collapsed, −2 when diverged."""
    spread = verdicts(history(gaussian()), "completed")
    assert collapse_margin(spread) == pytest.approx(math.log10(min(spread["std_scaled"] / 0.1, spread["m_r"] / 0.05)))
    assert collapse_margin({"std_scaled": 0.05, "m_r": 0.9}) == pytest.approx(math.log10(0.5))  # below: collapsed
    assert collapse_margin({"std_scaled": 0.0, "m_r": 0.0}) == -2.0 and collapse_margin({"std_scaled": 50.0}) == 2.0
    p_flat = {"std_scaled": 0.9, "m_r": 0.9, "loss_tensor": True, "p_std_scaled": 0.02, "p_m_r": 0.5}
    assert collapse_margin(p_flat) == pytest.approx(math.log10(0.2))
    assert collapse_margin({**p_flat, "loss_tensor": None}) == pytest.approx(math.log10(9))  # P is no loss tensor there
    assert collapse_margin({"diverged": True, "std_scaled": 0.9}) == -2.0 and collapse_margin({}) is None
