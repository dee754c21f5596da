"""The experiment runner: semantic reuse of cached runs, per-epoch progress lines, and SIGTERM stopping a
whole `siamlab reproduce` (in a subprocess, as a user or a scheduler would send it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from siamlab import config
from siamlab.experiments.cache import matches, same_config
from siamlab.experiments.runs import EpochLines
from siamlab.text import slug


def _current(**sets) -> dict:
    cfg = config.RunConfig()
    config.set_field(cfg, "method.name", "simclr")
    for k, v in sets.items():
        config.set_field(cfg, k.replace("__", "."), v)
    return cfg.to_dict()


def test_a_field_added_since_the_cached_run_counts_as_equal_at_its_default():
    current = _current(optim__epochs=3)
    cached = json.loads(json.dumps(current))
    del cached["data"]["on_device"]  # the cached run predates this field
    assert same_config(cached, current)
    assert not same_config(cached, _current(optim__epochs=3, data__on_device=False))  # new field, not at its default
    assert not same_config(cached, _current(optim__epochs=4))  # a real change
    cached["data"]["retired_field"] = 1  # present only in the cached file: no code reads it any more
    assert same_config(cached, current)


def test_method_params_missing_from_the_cached_config_compare_with_the_methods_defaults():
    from siamlab.methods import available

    default_tau = available()["simclr"].Params().tau
    cached = _current()
    assert same_config(cached, _current(method__tau=default_tau))
    assert not same_config(cached, _current(method__tau=default_tau * 2))
    # either side may leave a parameter at its default; a non-default on either side is another run
    assert same_config(_current(method__tau=default_tau), cached)
    assert not same_config(_current(method__tau=default_tau * 2), cached)


def test_a_simsiam_variant_is_not_reused_for_plain_simsiam():
    """Regression: a cached Tanh(FC)-predictor run (ZHANG Table 5) was copied for plain SimSiam (params {})."""
    def simsiam(**params):
        cfg = config.RunConfig()
        config.set_field(cfg, "method.name", "simsiam")
        for k, v in params.items():
            config.set_field(cfg, f"method.{k}", v)
        return cfg.to_dict()

    assert not same_config(simsiam(predictor="tanh_fc", normalize_input=True), simsiam())
    assert not same_config(simsiam(), simsiam(predictor="tanh_fc", normalize_input=True))
    assert same_config(simsiam(predictor="mlp"), simsiam()) and same_config(simsiam(), simsiam(predictor="mlp"))
    phased = simsiam()
    phased["phases"] = [{"epoch": 0, "method": {"name": "simsiam"}}, {"epoch": 5, "method": {"name": "naive"}}]
    other = json.loads(json.dumps(phased))
    other["phases"][1]["epoch"] = 6
    assert same_config(phased, json.loads(json.dumps(phased))) and not same_config(phased, other)


def test_matches_reads_the_run_folder(tmp_path):
    current = _current(optim__epochs=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(current))
    assert matches(tmp_path, current) and not matches(tmp_path, _current(optim__epochs=5))
    (tmp_path / "config.yaml").write_text("{not: [valid")
    assert not matches(tmp_path, current)


def test_only_finished_runs_are_reused_and_interrupted_ones_resume(tmp_path):
    from siamlab.experiments.runs import cached as _cached, resumable as _resumable

    current = _current(optim__epochs=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(current))
    (tmp_path / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    assert _cached(tmp_path, current) is None and not _resumable(tmp_path, current)  # no checkpoint: start again
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    assert _resumable(tmp_path, current) and not _resumable(tmp_path, _current(optim__epochs=3))
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "seconds": 1.0}))
    assert _cached(tmp_path, current) == {"status": "completed", "seconds": 1.0} and not _resumable(tmp_path, current)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "error"}))
    assert _cached(tmp_path, current) is None


def test_epoch_lines_follow_the_metrics_file(tmp_path):
    lines = []
    rows = [{"kind": "train", "step": 5, "epoch": 0.5, "loss": -0.1}, {"kind": "train", "step": 10, "epoch": 1.0, "loss": -0.2},
            {"kind": "eval", "step": 10, "epoch": 1, "knn_backbone": 71.25},
            {"kind": "eval", "step": 0, "epoch": 0, "random_init": True, "knn_backbone": 60.0}]
    with EpochLines(tmp_path, 3, "[x]", lines.append, every_s=0.05):
        with open(tmp_path / "metrics.jsonl", "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "train", "epo')  # a half-written row
            f.flush()
            time.sleep(0.3)
    assert len(lines) == 2 and lines[0].startswith("[x] epoch 1/3: loss -0.2000 (") and lines[1] == "[x] epoch 1/3: kNN 71.2%"


def test_sigterm_stops_the_whole_experiment_and_keeps_finished_runs(tmp_path):
    out = tmp_path / "t2"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "siamlab", "reproduce", "zhang-t2", "--scale", "tiny", "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "[zhang-t2 2/4] running" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=120)
    seen.append(rest)
    text = "".join(seen)
    assert proc.returncode == 128 + signal.SIGTERM, (text, err)
    assert "stopped by SIGTERM" in err and "run the same command again" in err
    assert "[zhang-t2 3/4]" not in text and "[zhang-t2 4/4]" not in text  # no further arm started
    assert "SimSiam s0 epoch 1/1" in text  # the per-epoch progress line of arm 1
    runs = out / "runs"
    first = json.loads((runs / f"{slug('SimSiam')}-s0" / "summary.json").read_text())
    assert first["status"] == "completed"  # the finished arm is kept
    assert not (runs / f"{slug('Naive Siamese')}-s0").exists() and not (runs / f"{slug('Symmetric Predictor')}-s0").exists()
    assert not (out / "results.json").exists()
    # the same command again continues: the finished arm is reused, the rest run, the outputs are written
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads((runs / f"{slug('SimSiam')}-s0" / "summary.json").read_text()) == first
    res = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in res["runs"]].count("completed") + [r["status"] for r in res["runs"]].count("diverged") == 4


def test_labels_that_share_a_run_folder_are_refused_before_any_run(tmp_path):
    """slug() keeps whitespace apart from other characters only as "_" (its docstring): 'a b' and 'a_b' share
    the folder a_b, so an experiment with both is refused in one sentence naming the two labels."""
    import pytest

    from siamlab.errors import ConfigError
    from siamlab.experiments import get, run_experiment
    from siamlab.experiments.spec import Arm

    assert slug("a b") == slug("a_b") == slug("a  b") == slug(" a_b_") == "a_b" and slug("τ=1") == slug("tau=1")
    assert slug("a\tb").startswith("a_b-") and slug("a__b") != "a_b"
    assert len({slug(x) for x in ("a b", "a-b", "a.b", "a/b", "a:b", "ab")}) == 6
    exp = get("zhang-t2")
    exp.arms_by_scale = {"tiny": [Arm("SimSiam"), Arm("a b"), Arm("a_b")]}
    with pytest.raises(ConfigError) as err:
        run_experiment(exp, "tiny", out=str(tmp_path / "x"), log=lambda s: None)
    msg = str(err.value)
    assert "\n" not in msg and "'a b'" in msg and "'a_b'" in msg and "runs/a_b-s<seed>" in msg
    assert not (tmp_path / "x" / "runs").exists()


def test_an_engine_bug_in_one_arm_is_recorded_with_its_traceback(tmp_path, monkeypatch):
    """An unexpected exception in one arm becomes an "error" record and the arm's error.txt (written whole);
    when even that file cannot be written, the record still comes back."""
    from siamlab.engine import trainer
    from siamlab.experiments.registry import get
    from siamlab.experiments.runs import execute, plan
    from siamlab.methods import available

    def broken(*args, **kwargs):
        raise RuntimeError("a bug deep in the engine")

    def run_one(exp, arm, scale, seed, out_dir, avail):
        return execute(plan(exp, arm, scale, seed, 1, out_dir, avail), lambda line: None)

    monkeypatch.setattr(trainer, "train", broken)
    exp = get("zhang-f4")
    rec = run_one(exp, exp.arms[0], "tiny", 0, tmp_path, set(available()))
    assert rec.status == "error" and rec.message == "RuntimeError: a bug deep in the engine"
    text = (Path(rec.run_dir) / "error.txt").read_text()
    assert text.startswith("Traceback") and "a bug deep in the engine" in text

    def full_disk(fd, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    rec = run_one(exp, exp.arms[1], "tiny", 0, tmp_path, set(available()))
    assert rec.status == "error" and not (Path(rec.run_dir) / "error.txt").exists()
