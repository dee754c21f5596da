"""Three recalibrated ZHANG experiments at smoke scale (one seed): the reference arm (SimSiam) must beat its
random-init network on the Fashion-MNIST smoke subset, and every claim must be decided or undecidable — never
"not run". The experiments share one folder, so the SimSiam run is made once and reused by the others, as
`siamlab reproduce` does in a catalogue folder (≈ 4 runs of ~1 min on one CPU thread)."""
from __future__ import annotations

import json

import pytest

from siamlab.experiments import get, run_experiment
from siamlab.experiments.gates import NOISE_FLOOR
from siamlab.experiments.outputs import NOT_RUN
from siamlab.experiments.runner import slug


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_zhang")


def reference_gain(out, label="SimSiam") -> tuple:
    summ = json.loads((out / "runs" / f"{slug(label)}-s0" / "summary.json").read_text())
    return summ["final"]["knn_backbone"], summ["random_init"]["knn_backbone"], summ


@pytest.mark.slow
@pytest.mark.parametrize("exp_id", ["zhang-f9", "zhang-t6", "zhang-f5a"])
def test_smoke_reference_arm_beats_random_init(exp_id, root):
    exp = get(exp_id)
    out = run_experiment(exp, "smoke", 1, str(root / f"{exp_id}-smoke"), log=lambda s: None, max_seeds=1)  # no seeds added: plumbing, not verdicts
    res = json.loads((out / "results.json").read_text())
    assert res["scale"] == "smoke" and "Fashion-MNIST" in res["notes"]
    label = "Last bias of the MLP" if exp_id == "zhang-t6" else "SimSiam"
    trained, init, summ = reference_gain(out, label)
    assert summ["dataset"] == "fashion_mnist" and summ["verdict"]["verdict"] == "not collapsed"
    assert trained > init + NOISE_FLOOR, f"{label}: kNN {trained:.2f} vs random init {init:.2f}"
    assert all(c["verdict"] != NOT_RUN for c in res["claims"]), res["claims"]
    cols = {c["key"] for c in res["columns"]}
    row = next(r for r in res["rows"] if r["label"] == label)
    if exp_id == "zhang-t6":  # the probe measured the learned part of the bias
        assert row["observed"]["bias_center_learned"]["mean"] is not None and "bias_init_share" in cols
    if exp_id == "zhang-f5a":  # the end-of-training zero crossing was logged
        assert row["observed"]["eta"]["mean"] is not None
