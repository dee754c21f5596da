"""Every registered method trains end to end through the engine on digits and on toy blobs, and logs
diagnostics (issue 4/5: "every method trains a few steps on toy data and digits and logs diagnostics")."""
from __future__ import annotations

import json
import math

import pytest

from siamlab import config
from siamlab.engine.trainer import train
from siamlab.methods import available

# Methods whose defaults need a specific setting to be valid on a tiny batch.
EXTRA = {
    "wmse": ["method.w_size=32"],  # the whitening sub-batch must exceed d and divide the batch
    "bridge": ["method.k=2", "model.proj_final_bn=false"],
    "eoa": ["method.mode=moving_average"],
    "moco": ["method.queue_size=128"],
    "swav": ["method.num_prototypes=16"],
    "dino": ["method.out_dim=32"],
}


def _run(tmp_path, name, data):
    common = [
        f"method.name={name}", "model.width=8", "model.proj_hidden=32", "model.proj_out=16", "model.pred_hidden=8",
        "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=2", "eval.knn_k=10", "engine.progress=false",
        f"engine.out={tmp_path}", f"engine.run_name={name}-{data}",
    ]
    data_args = {"digits": ["data.name=digits", "data.train_subset=256", "data.test_subset=128", "model.backbone=convnet"],
                 "blobs": ["data.name=blobs", "data.train_subset=256", "data.test_subset=128", "model.backbone=mlp"]}[data]
    return train(config.load(None, common + data_args + EXTRA.get(name, [])))


@pytest.mark.parametrize("data", ["digits", "blobs"])
@pytest.mark.parametrize("name", sorted(available()))
def test_method_trains_and_logs_diagnostics(tmp_path, name, data):
    res = _run(tmp_path, name, data)
    assert res.summary["status"] in ("completed", "diverged")
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in recs if r["kind"] == "train"]
    assert train_losses and isinstance(train_losses[0], float) and math.isfinite(train_losses[0])
    diags = [r for r in recs if r["kind"] == "diag"]
    assert diags, "no diagnostics logged"
    assert {"m_o", "m_r", "std_scaled"} <= diags[0].keys()
    assert "verdict" in res.summary["verdict"]
    evals = [r for r in recs if r["kind"] == "eval" and not r.get("random_init")]
    if res.summary["status"] == "diverged":  # allowed, but it must say so and keep its metrics
        assert res.summary["verdict"]["diverged"] is True and res.summary["message"]
        return
    assert evals and "knn_backbone" in evals[-1] and "sigma_i_projector" in evals[-1]
