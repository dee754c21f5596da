"""RankMe, LiDAR and α-ReQ in training runs: in every evaluation row and the summary, LiDAR's views drawn
from their own generator (a run is bit-identical with and without it)."""
from __future__ import annotations

import json

import torch

from siamlab import config
from siamlab.engine.trainer import train

LABEL_FREE_KEYS = {f"{m}_{f}" for m in ("rankme", "lidar", "alpha_req") for f in ("backbone", "projector")}


def tiny_image_cfg(tmp_path, *extra) -> config.RunConfig:
    """SimSiam on 160 digits with a width-8 ConvNet and the CIFAR augmentation (crops, jitter: many draws)."""
    return config.load(None, [
        "method.name=simsiam", "data.name=digits", "data.train_subset=160", "data.test_subset=80",
        "data.augment=zhang_a1", "model.width=8", "model.proj_hidden=32", "model.proj_out=32",
        "model.pred_hidden=16", "optim.batch_size=32", "optim.epochs=2", "eval.knn_k=10", "eval.every_epochs=1",
        "eval.online_probe=false", "eval.lidar_images=20", "eval.lidar_views=3", "diag.every_steps=2",
        "engine.progress=false", "engine.threads=1", f"engine.out={tmp_path}", "engine.run_name=run", *extra,
    ])


def _rows(run_dir) -> list:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_evaluation_row_and_the_summary_carry_the_label_free_metrics(tmp_path):
    res = train(tiny_image_cfg(tmp_path))
    evals = [r for r in _rows(res.run_dir) if r["kind"] == "eval"]
    assert len(evals) == 3 and evals[0].get("random_init")  # random init, then epochs 1 and 2
    for row in evals:
        assert LABEL_FREE_KEYS <= set(row), sorted(LABEL_FREE_KEYS - set(row))
        assert 1.0 <= row["rankme_projector"] <= 32.0 and 1.0 <= row["lidar_projector"] <= 19.0
    assert LABEL_FREE_KEYS <= set(res.summary["final"]) and LABEL_FREE_KEYS <= set(res.summary["random_init"])
    from siamlab.analysis.report import analyze

    shown = analyze(res.run_dir)
    assert all(k in shown["text"] for k in LABEL_FREE_KEYS) and any(p.endswith("label_free.png") for p in shown["plots"])


def test_lidar_views_do_not_touch_the_training_rng(tmp_path):
    """Same weights and the same training records with LiDAR on and off: its augmentations use their own generator."""
    on = train(tiny_image_cfg(tmp_path / "on"))
    off = train(tiny_image_cfg(tmp_path / "off", "eval.lidar_images=0"))
    a = torch.load(on.run_dir / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(off.run_dir / "checkpoints" / "last.pt", weights_only=True)
    for k in a["method"]:
        assert torch.equal(a["method"][k], b["method"][k]), k
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    losses = [[r["loss"] for r in _rows(run.run_dir) if r["kind"] == "train"] for run in (on, off)]
    assert losses[0] == losses[1] and losses[0]
    off_eval = [r for r in _rows(off.run_dir) if r["kind"] == "eval"][-1]
    assert not any(k.startswith("lidar_") for k in off_eval) and "rankme_projector" in off_eval


# --- checkpoints/best_unsupervised.pt --------------------------------------------------------------
def _ckpt(run_dir, name: str) -> dict:
    return torch.load(run_dir / "checkpoints" / f"{name}.pt", weights_only=True)


def test_best_unsupervised_is_the_evaluation_the_metric_ranks_first(tmp_path):
    for key, score in (("rankme_projector", lambda v: v), ("alpha_req_backbone", lambda v: -abs(v - 1.0))):
        res = train(tiny_image_cfg(tmp_path / key, "optim.epochs=3", f"eval.best_unsupervised={key}"))
        evals = [r for r in _rows(res.run_dir) if r["kind"] == "eval" and not r.get("random_init")]
        best = max(evals, key=lambda r: score(r[key]))  # the first of equals, as the engine keeps it
        state = _ckpt(res.run_dir, "best_unsupervised")
        assert state["epoch"] == best["epoch"] and state["best_unsupervised"] == score(best[key]), key
        assert _ckpt(res.run_dir, "last")["best_unsupervised"] == score(best[key])


def test_best_unsupervised_resumes_exactly_and_siamlab_eval_reads_it(tmp_path, capsys):
    """2 epochs straight == 1 epoch, then --resume: the same best_unsupervised.pt (and last.pt), bit for bit."""
    from siamlab.cli import main
    from siamlab.engine.trainer import Trainer

    straight = train(tiny_image_cfg(tmp_path / "a"))
    t = Trainer(tiny_image_cfg(tmp_path / "b"))
    t.cfg.optim.epochs = 1  # the first epoch only, on the 2-epoch schedule
    t.fit()
    resumed = train(tiny_image_cfg(tmp_path / "b"), run_dir=str(t.run_dir), resume=True)
    for name in ("best_unsupervised", "last"):
        a, b = _ckpt(straight.run_dir, name), _ckpt(resumed.run_dir, name)
        assert (a["epoch"], a["best_unsupervised"]) == (b["epoch"], b["best_unsupervised"]), name
        for k in a["method"]:
            assert torch.equal(a["method"][k], b["method"][k]), (name, k)
    assert main(["eval", str(resumed.run_dir), "--checkpoint", "best_unsupervised", "--no-progress"]) == 0
    assert "knn_backbone" in capsys.readouterr().out


def test_best_unsupervised_config_is_checked_in_one_sentence(tmp_path):
    import pytest

    from siamlab.engine.build import check_config
    from siamlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.best_unsupervised.*rankme_projector"):
        tiny_image_cfg(tmp_path, "eval.best_unsupervised=knn_backbone")
    with pytest.raises(ConfigError, match=r"eval.best_unsupervised=lidar_backbone needs LiDAR.*eval.lidar_images"):
        check_config(tiny_image_cfg(tmp_path, "eval.lidar_images=0", "eval.best_unsupervised=lidar_backbone"))
    with pytest.raises(ConfigError, match="eval.lidar_views"):
        tiny_image_cfg(tmp_path, "eval.lidar_views=1")
