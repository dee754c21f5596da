"""CLI end to end on toy data, and bad input: one sentence, non-zero exit, no traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ["--set", "method.name=simsiam", "--set", "data.name=blobs", "--set", "model.backbone=mlp", "--set", "model.width=32",
       "--set", "model.proj_hidden=32", "--set", "model.proj_out=16", "--set", "optim.batch_size=64",
       "--set", "optim.epochs=1", "--set", "engine.progress=false"]


def run(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "siamlab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_train_eval_analyze_end_to_end(tmp_path):
    r = run("train", *TOY, "--set", f"engine.out={tmp_path}", "--set", "engine.run_name=e2e")
    assert r.returncode == 0, r.stderr
    assert "random init" in r.stdout and "trained" in r.stdout
    assert f"run directory: {tmp_path / 'e2e'}" in r.stdout
    r = run("eval", str(tmp_path / "e2e"), "--linear", "--linear-epochs", "5")
    assert r.returncode == 0, r.stderr
    assert "random init" in r.stdout and "linear_top1" in r.stdout
    r = run("analyze", str(tmp_path / "e2e"))
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "e2e" / "analysis").glob("*.png"))


def test_train_from_yaml_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method:\n  name: simsiam\n  params:\n    predictor: linear\ndata:\n  name: moons\n"
                   "model:\n  backbone: mlp\n  proj_hidden: 32\n  proj_out: 16\noptim:\n  epochs: 1\n  batch_size: 64\n")
    r = run("train", str(cfg), "--set", "engine.progress=false", "--set", f"engine.out={tmp_path}", "--set", "engine.run_name=y")
    assert r.returncode == 0, r.stderr
    saved = (tmp_path / "y" / "config.yaml").read_text()
    assert "predictor: linear" in saved and "name: moons" in saved


@pytest.mark.parametrize("args, words", [
    (["train", "--set", "method.name=simsaim"], ["unknown method", "'simsaim'", "simsiam"]),
    (["train", "--set", "data.name=mnist"], ["unknown data.name", "fashion_mnist"]),
    (["train", "--set", "optim.lr=-1"], ["optim.lr", "-1", "> 0"]),
    (["train", "--set", "optim.lrr=0.1"], ["unknown config key", "optim.lrr", "lr"]),
    (["train", "--set", "optim.epochs=many"], ["optim.epochs", "many", "integer"]),
    (["train", "--set", "method.momentum=0.1"], ["method.momentum", "simclr", "tau"]),
    (["train", "--set", "method.name=simsiam", "--set", "method.predictor=cubic"], ["method.predictor", "cubic", "mlp"]),
    (["train", "does-not-exist.yaml"], ["does-not-exist.yaml", "does not exist"]),
    (["train", "--set", "data.name=cifar10", "--set", "data.root=/nonexistent"], ["CIFAR-10", "/nonexistent"]),
    (["eval", "/nonexistent/run"], ["not a siamlab run directory"]),
    (["train", "--resume", "/nonexistent/run"], ["not a siamlab run directory"]),
    (["analyze", "/nonexistent/run"], ["/nonexistent/run"]),
])
def test_bad_input_is_one_sentence(args, words, capsys):
    """In-process (fast); the subprocess test below checks the same path prints no traceback."""
    from siamlab.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_bad_input_in_a_subprocess_has_no_traceback():
    r = run("train", "--set", "optim.lr=-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "siamlab: error: optim.lr=-1.0 is not valid: expected a number > 0."


def test_bad_yaml_is_one_sentence(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim: [unclosed\n")
    r = run("train", str(p))
    assert r.returncode == 2 and "not valid YAML" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_examples_and_commands():
    r = run("--help")
    assert r.returncode == 0
    for w in ("train", "eval", "analyze", "reproduce", "datasets", "methods", "examples:"):
        assert w in r.stdout


def test_methods_and_datasets_listings():
    r = run("methods")
    assert r.returncode == 0 and "simsiam" in r.stdout and "ZHANG" in r.stdout
    r = run("datasets")
    assert r.returncode == 0
    for name in ("fashion_mnist", "digits", "blobs", "moons", "synthetic", "cifar10", "cifar100", "image_folder"):
        assert name in r.stdout
