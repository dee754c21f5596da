"""Engine: schedules, LARS, exact resume, SIGTERM, divergence, run directory contents."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.engine.optim import LARS
from siamlab.engine.schedule import effective_lr, lr_at
from siamlab.engine.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def toy_cfg(tmp_path, *extra) -> config.RunConfig:
    """SimSiam on the 2-D blobs with a small MLP: a full run takes about a second."""
    return config.load(None, [
        "method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=32", "model.proj_hidden=32",
        "model.proj_out=16", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=2",
        "optim.lr=0.1", "diag.every_steps=5", "eval.knn_k=20", "engine.progress=false",
        f"engine.out={tmp_path}", "engine.run_name=run", *extra,
    ])


# --- schedules -----------------------------------------------------------------------------------
def test_warmup_then_cosine_hand_values():
    # 10 warm-up steps to peak 1.0, then cosine over 90 steps to 0.
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)  # half way: cos(π/2) = 0
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(40, 100, 0, 2.0, "constant") == 2.0


def test_linear_scaling_rule():
    assert effective_lr(0.05, 512) == pytest.approx(0.1)


def test_lars_trust_ratio_matches_hand_update():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ‖w‖ = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    w.grad = torch.tensor([[0.6, 0.8]])  # ‖g‖ = 1
    b.grad = torch.tensor([2.0])
    opt = LARS([w, b], lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.02)
    opt.step()
    # weight: g·η‖w‖/‖g‖ = g·0.1 → w − 0.1·0.1·g ; bias: excluded, plain SGD step
    assert torch.allclose(w.detach(), torch.tensor([[3.0 - 0.01 * 0.6, 4.0 - 0.01 * 0.8]]))
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.2]))


# --- run directory, resume, divergence -----------------------------------------------------------
def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]


def test_run_directory_contents(tmp_path):
    res = train(toy_cfg(tmp_path))
    d = res.run_dir
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (d / name).exists(), name
    kinds = {json.loads(line)["kind"] for line in (d / "metrics.jsonl").read_text().splitlines()}
    assert {"train", "diag", "eval"} <= kinds
    s = json.loads((d / "summary.json").read_text())
    assert s["status"] == "completed" and s["epochs_done"] == 2
    assert "knn_backbone" in s["final"] and "knn_backbone" in s["random_init"]
    # the resolved config reloads to the same values
    again = config.load(str(d / "config.yaml"))
    assert again.to_dict() == res_cfg_dict(tmp_path)


def res_cfg_dict(tmp_path):
    return toy_cfg(tmp_path).to_dict()


def test_resume_is_exact(tmp_path):
    """2 epochs straight == 1 epoch, then --resume for the second (bit-identical weights on CPU)."""
    straight = train(toy_cfg(tmp_path / "a"))
    cfg_b = toy_cfg(tmp_path / "b")
    from siamlab.engine.trainer import Trainer

    t = Trainer(cfg_b)
    t.cfg.optim.epochs = 1  # run only the first epoch, but with the 2-epoch schedule (total_steps fixed)
    t.fit()
    resumed = train(toy_cfg(tmp_path / "b"), run_dir=str(t.run_dir), resume=True)
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nan_loss_stops_with_diverged(tmp_path):
    from siamlab.engine.trainer import Trainer

    """The loss turns NaN from the 4th step: the run stops with status diverged and keeps its metrics."""
    t = Trainer(toy_cfg(tmp_path, "optim.epochs=3"))
    orig = t.method.loss
    calls = {"n": 0}

    def nan_loss(out):
        calls["n"] += 1
        lo = orig(out)
        if calls["n"] > 3:
            lo.loss = lo.loss * float("nan")
        return lo

    t.method.loss = nan_loss
    res = t.fit()
    assert res.summary["status"] == "diverged"
    assert res.summary["verdict"].get("diverged") is True
    lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "train" for r in lines)  # metrics kept
    assert res.summary["steps"] < t.total_steps


def test_sigterm_writes_loadable_checkpoint_and_resumes(tmp_path):
    args = [sys.executable, "-m", "siamlab", "train", "--set", "data.name=blobs", "--set", "model.backbone=mlp",
            "--set", "model.width=32", "--set", "model.proj_hidden=32", "--set", "model.proj_out=16",
            "--set", "optim.batch_size=16", "--set", "optim.epochs=200", "--set", "engine.progress=false",
            "--set", "eval.every_epochs=0", "--set", f"engine.out={tmp_path}", "--set", "engine.run_name=sig"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sig" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"train"' in metrics.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err  # the shell's convention: `siamlab train && ...` stops here
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "sig" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["total_steps"] == 200 * (1500 // 16)
    verdicts = [x for x in out.splitlines() if x.startswith("verdict")]  # none without evidence, else provisional
    assert all(x.startswith(f"verdict (provisional: the run stopped at step {summary['steps']} of "
                            f"{summary['total_steps']}): ") for x in verdicts), out
    state = torch.load(tmp_path / "sig" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == summary["steps"] and state["step"] > 0
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())


def test_the_printed_verdict_and_exit_code_of_a_stopped_run():
    """An interrupted run prints no verdict without evidence and a provisional one with it (naming the step);
    it exits 128 + the signal (SIGTERM when the signal reached another rank), any other unfinished run 3."""
    from siamlab.cli import _verdict_line, exit_code

    rule = {"verdict": "not collapsed", "rule": "r"}
    base = {"status": "completed", "steps": 59, "total_steps": 312, "verdict": rule}
    assert _verdict_line(base) == "verdict: not collapsed  (r)"
    assert _verdict_line({**base, "status": "interrupted", "verdict": {"verdict": "unknown", "rule": "r"}}) == ""
    assert _verdict_line({**base, "status": "interrupted"}) == (
        "verdict (provisional: the run stopped at step 59 of 312): not collapsed  (r)")
    assert [exit_code("completed"), exit_code("interrupted", signal.SIGINT), exit_code("interrupted", None)] == [
        0, 130, 143]
    assert {exit_code(s) for s in ("diverged", "write_failed", "failed")} == {3}


# --- torch.compile -----------------------------------------------------------------------------------
def test_compiled_step_matches_the_eager_step_on_cpu(tmp_path):
    """engine.compile=true runs on the CPU (compiling takes ~30 s) and computes what the eager step does:
    the same seed gives the same initial weights and views, so the losses of three steps must agree
    to float32 rounding (fused kernels reorder sums)."""
    from siamlab.engine.trainer import Trainer

    losses = {}
    for compiled in (False, True):
        cfg = toy_cfg(tmp_path, "model.width=8", "eval.online_probe=false", "diag.every_steps=0",
                      f"engine.compile={str(compiled).lower()}", f"engine.run_name=compile-{compiled}")
        trainer = Trainer(cfg)
        order = torch.randperm(len(trainer.train_ds), generator=torch.Generator().manual_seed(0))
        losses[compiled] = []
        for s in range(3):
            rec = trainer.train_step(order[s * 64:(s + 1) * 64])
            trainer.step += 1
            losses[compiled].append(float(rec["loss"]))
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)
    assert len(set(losses[False])) == 3  # three different batches, three different losses


# --- bf16 --------------------------------------------------------------------------------------------
def test_bf16_runs_the_networks_in_bfloat16_and_the_loss_in_float32(tmp_path):
    """engine.bf16: the projector's output is bfloat16, the loss is float32 and equals the loss recomputed
    in float32 from the step's record; computing it under autocast instead would change it (Barlow
    Twins' cross-correlation is a bfloat16 matmul there), so the comparison can fail."""
    from siamlab.engine.trainer import Trainer

    cfg = toy_cfg(tmp_path, "method.name=barlow", "engine.bf16=true", "diag.every_steps=0")
    trainer = Trainer(cfg)
    seen = []
    trainer.method.encoder.projector.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    idx = torch.arange(64)
    views = trainer._views(idx, idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, record = trainer.model(views, idx)
    assert seen and set(seen) == {torch.bfloat16}
    assert loss.dtype == torch.float32 and record.z[0].dtype == torch.float32
    again = trainer.method.total_loss(record).loss
    torch.testing.assert_close(loss.detach(), again, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_bf16 = trainer.method.total_loss(record).loss
    assert abs(float(in_bf16) - float(again)) > 1e-4 * abs(float(again))
