"""`siamlab labelfree-validate`: rows from synthetic run folders (a row's verdict is the run's up to that
evaluation; copies count once), its statistics against independent computations (Spearman as Pearson of ranks, AUROC
as the Mann-Whitney count, the checkpoint loss by hand), the recommendation, the outputs."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from siamlab.analysis import labelfree_validation as V
from siamlab.cli import main
from siamlab.experiments.labelfree_check import collect, run_folders, run_rows
from siamlab.methods import available


def _run(folder, method, knn, rankme, lidar, alpha, collapse_at=None, std=0.8):
    """A run folder: diag rows every step (√d·std drops to 0.01 from step ``collapse_at``), a random-init eval at step
    0 and evals at steps 10, 20, ... with the given kNN and measures (first entry: random init)."""
    folder.mkdir(parents=True)
    rows = []
    for step in range(1, 10 * (len(knn) - 1) + 1):
        s = 0.01 if collapse_at is not None and step >= collapse_at else std
        rows.append({"kind": "diag", "step": step, "epoch": step / 10, "std_scaled": s, "m_r": s})
        if step % 10 == 0:
            k = step // 10
            rows.append({"kind": "eval", "step": step, "epoch": float(k), "knn_backbone": knn[k], "knn_projector": knn[k] - 1,
                         "rankme_projector": rankme[k], "lidar_projector": lidar[k], "alpha_req_projector": alpha[k],
                         "erank_projector": 50.0, "dim_projector": 64.0, "num_classes": 10.0})
    rows.insert(0, {"kind": "eval", "step": 0, "epoch": 0.0, "random_init": True, "knn_backbone": knn[0],
                    "knn_projector": knn[0] - 1, "rankme_projector": rankme[0], "lidar_projector": lidar[0],
                    "alpha_req_projector": alpha[0], "std_scaled_projector": 0.9, "m_r_projector": 0.9,
                    "erank_projector": 40.0, "dim_projector": 64.0, "num_classes": 10.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "method": method, "dataset": "digits"}))
    (folder / "config.yaml").write_text(f"method:\n  name: {method}\n")


def _catalogue(root):
    """Two experiments: RankMe rises with kNN everywhere; LiDAR falls with it; one run collapses at step 15."""
    g = np.random.default_rng(0)
    for e, method in enumerate(("simsiam", "barlow")):
        for a in range(4):
            knn = [60.0 + a] + [60.0 + a + 5 * k + g.uniform(0, 0.5) for k in range(1, 4)]
            _run(root / f"exp{e}-smoke" / "runs" / f"arm{a}-s0", method, knn, [k / 2 for k in knn], [100 - k for k in knn],
                 [1 + (80 - k) / 100 for k in knn])
    _run(root / "exp0-smoke" / "runs" / "bad-s0", "simsiam", [60.0, 55.0, 50.0, 45.0], [30.0, 20.0, 10.0, 2.0],
         [40.0, 41.0, 42.0, 43.0], [1.2, 2.0, 3.0, 5.0], collapse_at=15)


def test_every_method_has_a_family():
    assert [m for m in available() if V.family(m) == "other"] == []


def test_rows_carry_the_verdict_up_to_each_evaluation_and_copies_count_once(tmp_path):
    _catalogue(tmp_path)
    shutil.copytree(tmp_path / "exp0-smoke" / "runs" / "bad-s0", tmp_path / "copy-smoke" / "runs" / "bad-s0")
    assert len(run_folders([tmp_path])) == 9  # the copy is the same file byte for byte
    rows = run_rows(tmp_path / "exp0-smoke" / "runs" / "bad-s0")
    assert [r["random_init"] for r in rows] == [True, False, False, False]
    assert [r["verdict"] for r in rows] == ["not collapsed", "not collapsed", "collapsed", "collapsed"]
    assert [r["collapsed"] for r in rows] == [False, False, True, True]
    assert [r["knn_gain_backbone"] for r in rows] == [0.0, -5.0, -10.0, -15.0]
    assert rows[0]["experiment"] == "exp0-smoke" and rows[0]["family"] == "predictor" and rows[0]["rankme_projector"] == 30.0


def _ranks(x):
    return np.argsort(np.argsort(x)).astype(float)


def test_statistics_match_independent_computations(tmp_path):
    _catalogue(tmp_path)
    rows = collect([tmp_path], log=lambda s: None)
    res = V.validate(rows, reps=200)
    by = {(s["key"], s["transform"]): s for s in res["measures"]}
    x, y = (np.array([r[k] for r in rows]) for k in ("rankme_projector", "knn_projector"))
    want = np.corrcoef(_ranks(x), _ranks(y))[0, 1]  # no ties in these values: Spearman = Pearson of ranks
    assert by[("rankme_projector", None)]["rho"][0] == pytest.approx(want)
    lo, hi = by[("rankme_projector", None)]["rho"][1:]
    assert lo <= want <= hi
    # AUROC = P(a not-collapsed row scores above a collapsed one), counted over every pair
    ok = [r["lidar_projector"] for r in rows if not r["collapsed"]]
    bad = [r["lidar_projector"] for r in rows if r["collapsed"]]
    count = sum((a > b) + 0.5 * (a == b) for a in ok for b in bad) / (len(ok) * len(bad))
    assert by[("lidar_projector", None)]["auroc"][0] == pytest.approx(count) and count < 0.5  # LiDAR is high on collapse
    assert by[("rankme_projector", None)]["auroc"][0] == pytest.approx(1.0)
    # within each experiment RankMe = kNN/2 + 0.5 (projector kNN = backbone − 1): ρ = 1 in both; LiDAR: ρ = −1
    assert by[("rankme_projector", None)]["within"]["median"] == pytest.approx(1.0)
    assert by[("lidar_projector", None)]["within"]["median"] == pytest.approx(-1.0)
    # |α − 1| is α − 1 here (every α > 1), so its ρ is α's
    assert by[("alpha_req_projector", "abs1")]["rho"][0] == pytest.approx(by[("alpha_req_projector", None)]["rho"][0])
    assert res["recommendation"]["key"] == "rankme_projector"
    # the collapsed run's rows: LiDAR stays above the healthy median on both collapsed rows, RankMe on none
    lidar = by[("lidar_projector", None)]["misleading"]["high_while_complete"]
    assert (lidar["rows"], lidar["high"]) == (2, 2) and lidar["examples"][0].startswith("exp0-smoke/bad-s0 epoch 2")
    assert by[("rankme_projector", None)]["misleading"]["high_while_complete"]["high"] == 0


def test_checkpoint_loss_by_hand():
    rows = [{"run": "a", "random_init": True, "knn_projector": 99.0, "rankme_projector": 99.0},  # never a checkpoint
            {"run": "a", "knn_projector": 70.0, "rankme_projector": 5.0},
            {"run": "a", "knn_projector": 75.0, "rankme_projector": 9.0},
            {"run": "a", "knn_projector": 72.0, "rankme_projector": 9.0},  # a tie keeps the first
            {"run": "b", "knn_projector": 60.0, "rankme_projector": 3.0},
            {"run": "b", "knn_projector": 64.0, "rankme_projector": 2.0}]
    got = V.checkpoint_loss(rows, "rankme_projector", "projector")
    assert got == {"runs": 2, "lost": pytest.approx((0.0 + 4.0) / 2), "lost_last": pytest.approx((3.0 + 0.0) / 2)}


def test_cluster_bootstrap_resamples_runs():
    x = np.arange(12, dtype=float)
    value, lo, hi = V.cluster_bootstrap(V._spearman, x, 2 * x, [i // 3 for i in range(12)], reps=100)
    assert value == lo == hi == pytest.approx(1.0)
    assert all(math.isnan(v) for v in V.cluster_bootstrap(V._spearman, x, 0 * x, list(range(12)), reps=100))


def test_command_writes_tables_json_and_plot(tmp_path, capsys):
    _catalogue(tmp_path / "cat")
    out = tmp_path / "out"
    assert main(["labelfree-validate", str(tmp_path / "cat"), "--out", str(out), "--bootstrap", "100"]) == 0
    md = (out / "validation.md").read_text()
    assert md in capsys.readouterr().out and "**Recommendation: RankMe (projector)**" in md
    assert "| RankMe (projector) | 36 (9) |" in md and "redundancy reduction" in md
    data = json.loads((out / "validation.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert len(data["row_data"]) == 36 and data["recommendation"]["key"] == "rankme_projector"
    assert (out / "scatter.png").read_bytes().startswith(b"\x89PNG")
    assert main(["labelfree-validate", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["labelfree-validate", str(tmp_path / "empty")]) == 2
    assert "no evaluation row with kNN" in capsys.readouterr().err


def test_best_unsupervised_changes_no_number_and_finished_runs_stay_reusable(tmp_path):
    """eval.best_unsupervised only picks which evaluation best_unsupervised.pt holds: the same weights, metrics and
    summary with another key; so a finished run made with another key is reused, an interrupted one is not resumed."""
    import torch

    from siamlab.engine.trainer import train
    from siamlab.experiments.runs import cached, resumable

    from test_jobs import _strip
    from test_labelfree_engine import tiny_image_cfg

    runs = {key: train(tiny_image_cfg(tmp_path / key, "optim.epochs=3", f"eval.best_unsupervised={key}"))
            for key in ("rankme_projector", "lidar_backbone")}
    a, b = (r.run_dir for r in runs.values())
    rows = [[_strip(json.loads(line)) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) > 10
    assert _strip(runs["rankme_projector"].summary) == _strip(runs["lidar_backbone"].summary)
    wa, wb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True)["method"] for d in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = tiny_image_cfg(tmp_path / "rankme_projector", "optim.epochs=3", "eval.best_unsupervised=lidar_backbone").to_dict()
    assert cached(a, other) is not None
    summary = json.loads((a / "summary.json").read_text())
    (a / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    same = tiny_image_cfg(tmp_path / "rankme_projector", "optim.epochs=3", "eval.best_unsupervised=rankme_projector")
    assert not resumable(a, other) and resumable(a, same.to_dict())
