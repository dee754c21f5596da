"""gen-f2 (GEN Fig. 2): the measures against hand-derived values, the starts, the rules on runs that must pass and
fail, and a plausible wrong L_cor that the frame claim catches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siamlab.analysis import metrics as M
from siamlab.experiments import get
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.papers import gen_sphere as G
from siamlab.experiments.papers import sphere_points as P
from siamlab.experiments.results import Results


def polygon(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def rotation3(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def frame_points(seed: int, noise: float = 0.0) -> np.ndarray:
    """12 points on the ±axes of a random frame in 3-D, 4 per axis with random signs (± noise), normalized."""
    rng = np.random.default_rng(seed)
    z = rotation3(seed)[np.arange(12) % 3] * rng.choice([-1.0, 1.0], size=(12, 1)) + noise * rng.normal(size=(12, 3))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_l_cor_is_zero_on_a_frame_and_matches_its_formula():
    z = frame_points(0)
    assert float(M.l_cor(torch.tensor(z))) == pytest.approx(0.0, abs=1e-12)
    y = np.random.default_rng(1).normal(size=(12, 3))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    lam = 3 / 12 * sum(np.outer(v, v) for v in y)  # GEN eq. 8, f = √d·z
    assert float(M.l_cor(torch.tensor(y))) == pytest.approx(((lam - np.eye(3)) ** 2).sum(), rel=1e-10)


def test_uniformity_of_the_12_gon_matches_the_chord_formula():
    k = np.arange(1, 12)
    by_hand = math.log(np.mean(np.exp(-2.0 * (2 - 2 * np.cos(2 * np.pi * k / 12)))))  # every point sees the same 11 chords
    assert float(M.uniformity(torch.tensor(polygon(12)), 2.0)) == pytest.approx(by_hand, rel=1e-12)


def test_frame_fit_finds_the_frame_and_the_12_gon_s_best_frame():
    assert P.frame_fit(frame_points(3))[0] < 1e-3  # the exact frame, whatever its rotation
    noisy = frame_points(4, noise=0.02)
    assert P.frame_fit(noisy)[0] <= P.axis_deg(noisy, rotation3(4)) + 1e-9  # at least as good as the frame they came from
    # regular 12-gon: a frame through a vertex leaves 4 vertices on the axes and 8 at 30° -> 20° (any other angle is worse)
    assert P.frame_fit(polygon(12, 0.3))[0] == pytest.approx(20.0, abs=1e-3)
    frame = P.frame_fit(frame_points(6, noise=0.1))[1]
    assert np.allclose(frame @ frame.T, np.eye(3), atol=1e-9)  # the fitted frame is orthonormal


def test_evenness_separation_and_signature():
    assert P.nn_cv(polygon(12)) == pytest.approx(0.0, abs=1e-12)
    gaps = np.radians([0, 10, 40, 90, 150, 200, 260, 300])  # uneven: nearest neighbours at 10, 10, 30, 50, 50, 50, 40, 40°
    nn = np.array([10, 10, 30, 50, 50, 50, 40, 40.0])
    assert P.nn_cv(np.stack([np.cos(gaps), np.sin(gaps)], 1)) == pytest.approx(nn.std() / nn.mean(), rel=1e-9)
    z = frame_points(7, noise=0.05)
    moved = (z @ rotation3(8).T)[np.random.default_rng(9).permutation(12)] * np.array([1, -1, 1])  # rotate, relabel, mirror
    assert P.signature_distance(P.signature(z), P.signature(moved)) < 1e-9
    assert P.signature_distance(P.signature(z), P.signature(frame_points(10, noise=0.05))) > 0.1
    a = P.pairwise_deg(polygon(12))
    assert a[0, 1] == pytest.approx(30.0) and a[0, 6] == pytest.approx(180.0)


def test_starts_are_seeded_paired_and_a_frame_start_has_n_over_d_points_per_axis():
    p = {"n": 12, "d": 3, "start": "frame", "noise": 0.0}
    z = G._start(p, 3).numpy()
    assert np.array_equal(z, G._start(p, 3).numpy()) and not np.array_equal(z, G._start(p, 4).numpy())
    frame = np.array(P.frame_fit(z)[1])
    counts = np.bincount(np.abs(z @ frame.T).argmax(axis=1), minlength=3)
    assert sorted(counts) == [4, 4, 4] and P.frame_fit(z)[0] < 1e-3
    cor = G.optimize_points({"points": {**p, "loss": "cor"}, "optim": {"steps": 5, "lr": 1.0}, "diag": {"every_steps": 1}}, 3)[0]
    uni = G.optimize_points({"points": {**p, "loss": "uniform"}, "optim": {"steps": 5, "lr": 1.0}, "diag": {"every_steps": 1}}, 3)[0]
    assert cor["start_points"] == uni["start_points"]  # the two losses start from the same points


def _run(label: str, seed: int, loss: str, start: str, d: int, l_cor=None):
    s, h = G.optimize_points({"points": {"loss": loss, "d": d, "n": 12, "start": start}, "optim": {"steps": 500, "lr": 1.0},
                              "diag": {"every_steps": 5}}, seed)
    return RunRecord(label, seed, "completed", summary=s, history=h, probe=dict(s["final"]))


def _results(records) -> Results:
    return Results(get("gen-f2"), records, "smoke")


def test_rules_hold_on_the_minimizers_and_fail_on_other_points():
    lab = G.label
    cor, uni = lab("cor", "random", 2), lab("uniform", "random", 2)
    recs = [_run(cor, s, "cor", "random", 2) for s in range(2)] + [_run(uni, s, "uniform", "random", 2) for s in range(2)]
    res = _results(recs)
    assert G.minimized_at_distinct([cor])(res)[0] is True
    assert G.spreads_evenly([uni])(res)[0] is True
    assert G.less_separated([(cor, uni)])(res)[0] is True
    # the other way round, each must fail: L_uniform's restarts all end at the 12-gon, L_cor's points are uneven
    swapped = _results([RunRecord(cor, r.seed, "completed", summary=r.summary, probe=r.probe) for r in recs if r.label == uni]
                       + [RunRecord(uni, r.seed, "completed", summary=r.summary, probe=r.probe) for r in recs if r.label == cor])
    assert G.minimized_at_distinct([cor])(swapped)[0] is False
    assert G.spreads_evenly([uni])(swapped)[0] is False and G.less_separated([(cor, uni)])(swapped)[0] is False
    one = _results([recs[0]])
    assert G.minimized_at_distinct([cor])(one)[0] is None  # distinct configurations need two restarts


def test_a_centered_covariance_l_cor_leaves_the_frame_and_fails_the_frame_claim(monkeypatch):
    """A plausible wrong L_cor: the centered covariance instead of GEN's uncentered E[f fᵀ]. The frame start's random
    signs leave a mean, so it moves the points off the frame, and the claim fails."""
    label = G.label("cor", "frame", 2)
    right = _results([_run(label, s, "cor", "frame", 2) for s in range(2)])
    assert G.stays_on_frame([label])(right)[0] is True

    def centered(z):
        zn = M.unit(z)
        zc = zn - zn.mean(dim=0)
        lam = zc.T @ zc * (zn.shape[1] / zn.shape[0])
        return (lam - torch.eye(zn.shape[1], dtype=lam.dtype)).pow(2).sum()

    monkeypatch.setattr(M, "l_cor", centered)
    wrong = _results([_run(label, 0, "cor", "frame", 2)])
    ok, why = G.stays_on_frame([label])(wrong)
    assert ok is False and "rule: L_cor < 0.0001 and angle < 10°" in why
