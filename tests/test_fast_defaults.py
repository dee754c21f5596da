"""The CPU defaults of issue 20: the thread count (set by every run, said in its first line), OpenMP's
passive wait policy, channels_last image networks, and that a run under them is deterministic and resumes
exactly (2 epochs straight == 1 + resume + 1, bit-identical)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.engine import threads
from siamlab.engine.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[1]


def image_cfg(out: Path, *extra) -> config.RunConfig:
    """The main job's method, network kind and augmentation at toy size: SimCLR, a width-8 ConvNet on 8x8 digits."""
    return config.load(None, [
        "data.name=digits", "data.train_subset=512", "model.width=8", "model.proj_hidden=32", "model.proj_out=16",
        "optim.batch_size=128", "optim.epochs=2", "diag.every_steps=2", "eval.knn_k=20", "engine.progress=false",
        f"engine.out={out}", "engine.run_name=run", *extra])


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- the thread count ----------------------------------------------------------------------------
def test_thread_count_from_config_then_environment_then_cores(monkeypatch):
    monkeypatch.setattr(threads, "process_cores", lambda: 6)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads(2) == (2, "engine.threads=2")
    assert threads.choose_threads(0) == (3, "OMP_NUM_THREADS=3")
    for unusable in ("abc", "0", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert threads.choose_threads(0) == (6, "6 cores this process may use")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "process_cores", lambda: 1)
    assert threads.choose_threads(0) == (1, "1 core this process may use")


def test_a_run_sets_its_own_count_whatever_the_process_had(tmp_path, monkeypatch, restore_threads):
    """A count left by earlier code in the process (another run, the caller) does not leak into a run; the
    summary records the count used."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "process_cores", lambda: 2)
    torch.set_num_threads(1)
    res = train(image_cfg(tmp_path, "optim.epochs=1", "eval.random_init=false"))
    assert torch.get_num_threads() == 2 and res.summary["threads"] == 2
    res = train(image_cfg(tmp_path, "optim.epochs=1", "eval.random_init=false", "engine.threads=1",
                          "engine.run_name=one"))
    assert torch.get_num_threads() == 1 and res.summary["threads"] == 1


def run_python(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    full.update(env, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_openmp_waits_passively_unless_the_user_says_otherwise_or_torch_came_first():
    show = "import os; from siamlab.engine.threads import line; print(os.environ['OMP_WAIT_POLICY'], '|', line(2, 'x'))"
    assert run_python("import siamlab, torch; " + show) == "PASSIVE | threads: 2 (x)"
    active = run_python("import siamlab, torch; " + show, OMP_WAIT_POLICY="active")
    assert active.startswith("active | threads: 2 (x; OMP_WAIT_POLICY=active: waiting threads spin"), active
    assert run_python("import torch, siamlab; " + show, OMP_WAIT_POLICY="passive") == "passive | threads: 2 (x)"
    late = run_python("import torch, siamlab; " + show)  # too late for torch's runtime; child processes inherit it
    assert late.startswith("PASSIVE | threads: 2 (x; torch was imported before siamlab"), late
    assert "OMP_WAIT_POLICY=PASSIVE before importing torch" in late


def test_the_first_line_of_a_training_run_names_the_thread_count(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "siamlab", "train", "--set", "data.name=blobs", "--set", "model.backbone=mlp",
            "--set", "optim.epochs=1", "--set", "optim.batch_size=64", "--set", f"engine.out={tmp_path}"]
    r = subprocess.run(args + ["--set", "engine.threads=1"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == "threads: 1 (engine.threads=1)", r.stderr
    r = subprocess.run(args, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr.splitlines()[0] == "threads: 1 (OMP_NUM_THREADS=1)", r.stderr
    assert json.loads(next(tmp_path.glob("*/summary.json")).read_text())["threads"] == 1


# --- channels_last by default: determinism and exact resume ------------------------------------------
def test_image_networks_and_views_are_channels_last_by_default(tmp_path):
    t = Trainer(image_cfg(tmp_path))
    try:
        conv = next(p for p in t.method.parameters() if p.ndim == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last)
        views = t._views(torch.arange(4), torch.arange(4))
        assert all(v.is_contiguous(memory_format=torch.channels_last) for v in views)
    finally:
        t.release()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_default_runs_are_deterministic_and_resume_exactly(tmp_path, n_threads, restore_threads):
    """With the defaults (channels_last) and 1 or 2 threads: two runs give bit-identical weights, and
    2 epochs straight == 1 epoch + --resume for the second."""
    sets = [f"engine.threads={n_threads}"]
    first = train(image_cfg(tmp_path / "a", *sets)).run_dir
    again = train(image_cfg(tmp_path / "b", *sets)).run_dir
    assert_same_weights(first, again)
    t = Trainer(image_cfg(tmp_path / "c", *sets))
    t.cfg.optim.epochs = 1  # the first epoch only, on the 2-epoch schedule
    t.fit()
    resumed = train(image_cfg(tmp_path / "c", *sets), run_dir=str(t.run_dir), resume=True).run_dir
    assert_same_weights(first, resumed)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (first, resumed)]
    assert summaries[0]["final"] == summaries[1]["final"] and summaries[0]["threads"] == n_threads
