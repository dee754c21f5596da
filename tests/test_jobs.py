"""`siamlab reproduce --jobs N`: the same numbers as one job, lines for reused runs, a dead worker fails only its run,
SIGTERM stops the workers too and leaves runs the same command reuses or resumes (tests/test_runner.py runs that
command again after a SIGTERM with one job; runs.plan / runs.execute are the same code for any N)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from siamlab.experiments import run_experiment
from siamlab.experiments.runs import cached, resumable
from siamlab.experiments.spec import Arm, Claim, Column, Experiment

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = {"seconds", "cpu_seconds", "run_seconds", "finished", "run_dir", "time", "wall", "elapsed", "samples_per_s", "views_per_s",
            "steps_per_s", "throughput", "eta_s"}


def _tiny_experiment() -> Experiment:
    """Two methods on tiny digits (a width-8 ConvNet, 160 images), two seeds each: four runs of a second."""
    arms = [Arm("SimSiam"), Arm("BYOL", {"method": {"name": "byol"}})]
    return Experiment("jobs-check", "P", "item", "it trains", arms, [Claim("trains", ["*"], lambda res: (True, "always"))],
                      [Column("knn", "kNN"), Column("std", "std")], seeds={"tiny": 2, "smoke": 2, "paper": 1})


def _strip(x):
    """``x`` without the timing and location fields that differ between two runs of the same thing."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _metrics(run: Path) -> list:
    return [_strip(json.loads(line)) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_two_jobs_give_every_number_of_one_job(tmp_path):
    """Both folders under different parents (a sibling folder's finished run would be copied, not made again)."""
    lines = []
    one = run_experiment(_tiny_experiment(), "tiny", out=str(tmp_path / "a" / "x"), log=lambda s: None, jobs=1)
    two = run_experiment(_tiny_experiment(), "tiny", out=str(tmp_path / "b" / "x"), log=lines.append, jobs=2)
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert [r["status"] for r in r1["runs"]] == ["completed"] * 4
    assert _strip(r1) == _strip(r2)  # every metric of every row, the claims, the verdicts
    runs = sorted(p.name for p in (one / "runs").iterdir())
    assert len(runs) == 4 and runs == sorted(p.name for p in (two / "runs").iterdir())
    for name in runs:
        s1, s2 = (json.loads((d / "runs" / name / "summary.json").read_text()) for d in (one, two))
        assert _strip(s1) == _strip(s2) and s1["final"]["knn_backbone"] == s2["final"]["knn_backbone"]
        assert _metrics(one / "runs" / name) == _metrics(two / "runs" / name)
    starts = [line for line in lines if " running " in line]
    assert len(starts) == 4 and any(" epoch 1/1" in line for line in lines)  # progress lines come back from workers
    # the same experiment again: every run is reused, and the line says so (no "running", no seconds)
    again = []
    run_experiment(_tiny_experiment(), "tiny", out=str(tmp_path / "b" / "x"), log=again.append, jobs=2)
    assert len(again) == 4 and all(": reused | completed" in line and not line.endswith("s") for line in again), again


def die_on_seed_1(params: dict, seed: int) -> tuple:
    """A function arm whose run kills its worker process for seed 1 (as a segfault or the OOM killer would)."""
    if seed == 1:
        os._exit(3)
    return {"final": {"v": float(seed)}}, [{"kind": "diag", "step": 1, "epoch": 1.0, "v": float(seed)}]


def test_a_worker_that_dies_fails_only_its_own_run(tmp_path):
    arm = Arm("points", {"optim": {"steps": 1}, "diag": {"every_steps": 1}}, run=die_on_seed_1)
    exp = Experiment("die-check", "P", "item", "-", [arm], [Claim("v", ["points"], lambda res: (True, "ok"))],
                     [Column("v", "v")], data_kind="points")
    lines = []
    out = run_experiment(exp, "tiny", seeds=3, out=str(tmp_path / "d"), log=lines.append, jobs=2)
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["completed", "error", "completed"], runs
    assert "worker process died (exit code 3)" in runs[1]["message"]


def test_sigterm_stops_the_workers_and_leaves_runs_to_reuse_or_resume(tmp_path):
    out = tmp_path / "t2"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "siamlab", "reproduce", "zhang-t2", "--scale", "tiny", "--out", str(out), "--jobs", "2",
           "--set", "optim.epochs=200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    workers = []
    for line in proc.stdout:
        seen.append(line)
        # the first run to print an epoch: progress lines come in bursts, but 200 epochs (~20 s at tiny) leave no run
        # time to finish before the stop, so a third run handed out would be one started after the signal
        if " epoch 1/200: loss" in line:
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=180)
    text = "".join(seen) + rest
    assert proc.returncode == 128 + signal.SIGTERM, (text, err)
    assert "stopped by SIGTERM" in err and "run the same command again" in err
    assert "[zhang-t2 3/4] running" not in text and "[zhang-t2 4/4] running" not in text  # no further run started
    assert len(workers) >= 2
    time.sleep(2)
    assert not [p for p in workers if _alive(p)], workers  # no worker left behind
    summaries = {p.parent: json.loads(p.read_text()) for p in (out / "runs").glob("*/summary.json")}
    assert summaries and {s["status"] for s in summaries.values()} <= {"interrupted", "completed"}
    assert not (out / "results.json").exists()
    for run, summ in summaries.items():  # what the same command does next: reuse the finished, resume the interrupted
        current = yaml.safe_load((run / "config.yaml").read_text())
        assert (cached(run, current) is not None) == (summ["status"] == "completed")
        assert resumable(run, current) == (summ["status"] == "interrupted")


def _stat(pid) -> list:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _children(pid: int) -> list:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _stat(p.name)[1:2] == [str(pid)]]


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return bool(st) and st[0] != "Z"
