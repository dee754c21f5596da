"""A checkpoint that does not fit the run is refused in one sentence naming the layer or config key, for
``--resume`` and for ``siamlab eval`` (issue 14 item 3); ``siamlab eval`` shows progress (item 6)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.cli import main
from siamlab.engine.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
       "eval.knn_k=10", "engine.progress=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished toy runs: ``a`` (projector output 8) and ``b`` (projector output 16)."""
    out = tmp_path_factory.mktemp("runs")
    a = train(config.load(None, TOY + [f"engine.out={out}", "engine.run_name=a"])).run_dir
    b = train(config.load(None, TOY + [f"engine.out={out}", "engine.run_name=b", "model.proj_out=16"])).run_dir
    return a, b


@pytest.fixture
def run_a(runs, tmp_path):
    """A fresh copy of run ``a`` whose checkpoint a test may replace."""
    dest = tmp_path / "a"
    shutil.copytree(runs[0], dest)
    return dest


def both_commands(run: Path, capsys) -> list:
    """``siamlab train --resume`` and ``siamlab eval`` on ``run``: each one sentence, exit 2, no traceback."""
    lines = []
    for argv in (["train", "--resume", str(run)], ["eval", str(run), "--no-progress"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        got = [x for x in err.strip().splitlines() if x.strip()]
        assert len(got) == 1 and got[0].startswith("siamlab: error: ") and "Traceback" not in err, err
        lines.append(got[0])
    return lines


def test_checkpoint_of_another_architecture_names_the_layer_and_the_key(runs, run_a, capsys):
    shutil.copy(runs[1] / "checkpoints" / "last.pt", run_a / "checkpoints" / "last.pt")
    for line in both_commands(run_a, capsys):
        assert "encoder.projector" in line and "(16," in line and "(8," in line, line
        assert "model.proj_out=16 where this run has model.proj_out=8" in line, line


@pytest.mark.parametrize("how, words", [
    ("drop", ["layer encoder.backbone", "missing from the checkpoint"]),
    ("foreign", ["the checkpoint has layer intruder.weight"]),
    ("bare", ["not a siamlab checkpoint", "'method'"]),
    ("garbage", ["not a readable siamlab checkpoint"]),
])
def test_foreign_or_missing_keys_are_named(run_a, capsys, how, words):
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    if how == "drop":
        state["method"].pop(next(k for k in state["method"] if k.startswith("encoder.backbone")))
    elif how == "foreign":
        state["method"]["intruder.weight"] = torch.zeros(2)
    elif how == "bare":
        state = state["method"]
    if how == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        torch.save(state, path)
    for line in both_commands(run_a, capsys):
        for w in words:
            assert w in line, (w, line)


def test_checkpoint_of_another_config_is_named(run_a, capsys):
    """Same layers, another config: the weights would load, but into another run than the one they come from."""
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["optim"]["lr"] = 0.123  # an optimizer setting may differ (an edited schedule) ...
    state["config"]["data"]["noise_std"] = 0.5  # ... the data may not
    torch.save(state, path)
    for line in both_commands(run_a, capsys):
        assert "was written with data.noise_std=0.5 where this run has data.noise_std=None" in line, line


def test_checkpoint_without_training_state_cannot_resume_but_evaluates(run_a, capsys):
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    torch.save({"method": state["method"], "config": state["config"]}, path)
    assert main(["train", "--resume", str(run_a)]) == 2
    err = capsys.readouterr().err
    assert "lacks 'optimizer', 'step'" in err and "siamlab eval" in err, err
    assert main(["eval", str(run_a), "--no-progress"]) == 0


def test_eval_shows_progress_while_it_embeds_and_fits_the_probe(runs):
    """`siamlab eval` used to print nothing until the table; now each network's embedding of each split and
    the linear probe show a bar on stderr (the table stays on stdout)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "siamlab", "eval", str(runs[0]), "--linear", "--linear-epochs", "3"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for label in ("random init: embedding the train split", "random init: embedding the test split",
                  "trained: embedding the train split", "random init: linear probe", "trained: linear probe"):
        assert label in r.stderr, (label, r.stderr)
    assert "random init" in r.stdout and "linear_top1" in r.stdout and "embedding" not in r.stdout
