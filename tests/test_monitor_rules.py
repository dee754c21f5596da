"""siamlab.Monitor follows the rules of training runs' directories (issue 21 item 1): a folder that holds a run is
refused (never truncated), ``overwrite=True`` replaces it, ``resume=True`` continues it, and the folder's lock is
held from creation to close, so a Monitor and a training run never write one folder at once. Bad arguments are
one sentence naming the argument, the value and the fix (item 5); NaN embeddings are reported."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.analysis.report import analyze
from siamlab.engine.runlock import LOCK_NAME, RunDirError, RunLock
from siamlab.engine.runlog import WriteFailed
from siamlab.engine.trainer import train
from siamlab.interop.monitor import Monitor
from siamlab.interop.monitor_files import MonitorError, NonFiniteWarning
from test_write_failures import full_disk_at

ROOT = Path(__file__).resolve().parents[1]
TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
       "eval.knn_k=10", "eval.online_probe=false", "engine.progress=false"]


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def views(seed: int = 0, batch: int = 16, dim: int = 8) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) for _ in range(2)]


def monitored(folder: Path, steps, **kwargs) -> dict:
    with Monitor(folder, every=2, **kwargs) as mon:
        for step in steps:
            mon.log(step, views(step), loss=float(step))
    return mon.close()


def records(folder: Path) -> list:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


# --- refuse, overwrite, resume ----------------------------------------------------------------------
def test_a_folder_holding_a_training_run_is_refused_and_left_byte_identical(tmp_path):
    run = train(config.load(None, TOY + [f"engine.out={tmp_path}", "engine.run_name=run"])).run_dir
    before = digest(run)
    with pytest.raises(RunDirError) as err:
        Monitor(run, every=2)
    msg = str(err.value)
    assert "\n" not in msg and str(run) in msg and "already holds a run" in msg
    assert f"Monitor({str(run)!r}, resume=True)" in msg and "overwrite=True" in msg and "another folder" in msg
    assert digest(run) == before  # metrics.jsonl not truncated, metrics.csv and summary.json untouched
    RunLock(run).acquire().release()  # and not left locked


def test_a_monitored_run_is_refused_then_replaced_with_overwrite(tmp_path):
    folder = tmp_path / "loop"
    monitored(folder, range(0, 20))
    (folder / "notes.txt").write_text("mine")
    before = digest(folder)
    with pytest.raises(RunDirError, match="resume=True"):
        Monitor(folder)
    assert digest(folder) == before
    monitored(folder, range(100, 104), overwrite=True)
    assert [r["step"] for r in records(folder) if r["kind"] == "diag"] == [100, 102]
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0] == "kind,step,epoch,name,value" and not any(r.startswith("diag,0,") for r in rows)
    assert (folder / "notes.txt").read_text() == "mine"  # overwrite removes the run's files only


def test_resume_continues_the_run_and_drops_the_steps_logged_again(tmp_path):
    """The loop crashed after logging step 18 and restarts from its checkpoint at step 10: the records of
    steps 10-18 are dropped (from metrics.jsonl and metrics.csv) and logged again, as a resumed training
    run drops what came after its checkpoint; the verdict and analyze see the whole run."""
    folder = tmp_path / "loop"
    monitored(folder, range(0, 20))
    summary = monitored(folder, range(10, 30), resume=True)
    steps = [r["step"] for r in records(folder) if r["kind"] == "diag"]
    assert steps == list(range(0, 30, 2))  # each step once, in order
    csv_steps = [int(r.split(",")[1]) for r in (folder / "metrics.csv").read_text().splitlines()[1:] if r.startswith("diag,")]
    assert sorted(set(csv_steps)) == list(range(0, 30, 2)) and csv_steps == sorted(csv_steps)
    assert summary["steps"] == 28 and json.loads((folder / "summary.json").read_text())["steps"] == 28
    assert analyze(folder)["verdict"]["verdict"] == "not collapsed"


def test_resume_of_a_folder_without_a_run_is_refused_and_makes_nothing(tmp_path):
    with pytest.raises(RunDirError, match=r"holds no run; leave out resume=True"):
        Monitor(tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_a_new_folder_holding_other_files_is_used_and_keeps_them(tmp_path):
    (tmp_path / "readme.txt").write_text("mine")
    monitored(tmp_path, range(4))
    assert (tmp_path / "readme.txt").read_text() == "mine" and (tmp_path / "summary.json").is_file()


# --- one writer: the training runs' lock ---------------------------------------------------------------
def test_training_is_refused_while_a_monitor_holds_the_folder_and_after_close_it_may(tmp_path):
    folder = tmp_path / "run"
    cfg = config.load(None, TOY + [f"engine.out={tmp_path}", "engine.run_name=run"])
    mon = Monitor(folder, every=1)
    mon.log(0, views())
    before = (folder / "metrics.jsonl").read_text(), set(digest(folder))  # (the loggers' files grow in a thread)
    with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
        train(cfg, overwrite=True)
    with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
        Monitor(folder, overwrite=True)  # nor a second Monitor
    assert (folder / "metrics.jsonl").read_text() == before[0] and before[1] <= set(digest(folder))  # nothing removed
    mon.close()
    assert train(cfg, overwrite=True).summary["status"] == "completed"


def test_a_monitor_is_refused_while_training_writes_the_folder(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "siamlab", "train", *sum((["--set", s] for s in TOY + [
        f"engine.out={tmp_path}", "engine.run_name=run", "optim.epochs=500", "eval.every_epochs=0",
        "optim.batch_size=16"]), [])]
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not ((run / "metrics.jsonl").exists() and '"train"' in (run / "metrics.jsonl").read_text()):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        size = (run / "metrics.jsonl").stat().st_size
        for kwargs in ({"overwrite": True}, {"resume": True}):
            with pytest.raises(RunDirError) as err:
                Monitor(run, every=1, **kwargs)
            assert f"in use by process {proc.pid} on host {socket.gethostname()}" in str(err.value), str(err.value)
        assert (run / "metrics.jsonl").stat().st_size >= size and (run / "config.yaml").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


# --- close, and a write that fails -------------------------------------------------------------------------
def test_close_twice_returns_the_summary_and_log_after_close_is_one_sentence(tmp_path):
    mon = Monitor(tmp_path / "m", every=1)
    mon.log(0, views())
    first = mon.close()
    assert mon.close() == first
    for call in (lambda: mon.log(1, views()), lambda: mon.log_features(1, {"projector": views()[0]})):
        with pytest.raises(MonitorError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and "after close()" in msg and f"Monitor({str(tmp_path / 'm')!r}, resume=True)" in msg


def test_a_full_disk_at_close_names_how_to_continue_and_frees_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    mon = Monitor(folder, every=1)
    mon.log(0, views())
    full_disk_at(monkeypatch, "summary.json")
    with pytest.raises(WriteFailed) as err:
        mon.close()
    msg = str(err.value)
    assert "summary.json (No space left on device)" in msg and f"Monitor({str(folder)!r}, resume=True)" in msg
    assert "siamlab train" not in msg
    monkeypatch.undo()
    assert Monitor(folder, every=1, resume=True).close()["steps"] == 0  # the lock was freed; the records kept


# --- bad arguments: one sentence each --------------------------------------------------------------------
@pytest.mark.parametrize("every", ["abc", 0, -3, 2.5, None, True])
def test_bad_every_is_one_sentence_and_makes_no_folder(tmp_path, every):
    with pytest.raises(MonitorError) as err:
        Monitor(tmp_path / "m", every=every)
    msg = str(err.value)
    assert "\n" not in msg and f"every={every!r}" in msg and "integer >= 1" in msg
    assert not (tmp_path / "m").exists()


def test_bad_loggers_is_one_sentence(tmp_path):
    with pytest.raises(MonitorError, match=r"loggers=\['csv', 'tensorbord'\].*'tensorbord' is not one of"):
        Monitor(tmp_path / "m", loggers=["csv", "tensorbord"])
    assert not (tmp_path / "m").exists()


BAD_VIEWS = {
    "batch of 1": ([torch.randn(1, 8), torch.randn(1, 8)], None, ["batch of 1", "at least 2"]),
    "empty list": ([], None, ["z must be a non-empty list", "got []"]),
    "1-D tensors": ([torch.randn(8), torch.randn(8)], None, ["z[0] has shape (8,)", "[batch, dim]"]),
    "4-D tensors": ([torch.randn(4, 3, 2, 2)] * 2, None, ["z[0] has shape (4, 3, 2, 2)", "flatten(1)"]),
    "one tensor": (torch.randn(2, 8, 4), None, ["a tensor of shape (2, 8, 4)", "[z1, z2]"]),
    "mismatched batch": ([torch.randn(8, 4), torch.randn(6, 4)], None, ["z[1] has shape (6, 4)", "z[0] has (8, 4)"]),
    "mismatched dim": ([torch.randn(8, 4), torch.randn(8, 5)], None, ["z[1] has shape (8, 5)", "same dimension"]),
    "not tensors": ([[1.0, 2.0], [3.0, 4.0]], None, ["z[0] is a list, not a tensor"]),
    "p of another batch": (views(), [torch.randn(4, 8), torch.randn(4, 8)], ["p holds 2 view(s) of batch 4", "batch 16"]),
    "p with more views": (views(), views() + views(), ["p holds 4 view(s)", "2 view(s) of z"]),
}


@pytest.mark.parametrize("case", list(BAD_VIEWS))
def test_bad_views_are_one_sentence_and_write_nothing(tmp_path, case):
    z, p, words = BAD_VIEWS[case]
    mon = Monitor(tmp_path / "m", every=1)
    mon.log(0, views())
    before = (tmp_path / "m" / "metrics.jsonl").read_text()
    with pytest.raises(MonitorError) as err:
        mon.log(1, z, p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("Monitor.log(step=1)"), msg
    for w in words:
        assert w in msg, (w, msg)
    assert (tmp_path / "m" / "metrics.jsonl").read_text() == before
    mon.log(2, views())  # the Monitor still works
    mon.close()


def test_nan_embeddings_are_reported_once(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Monitor(tmp_path / "m", every=1) as mon:
            mon.log(0, views())
            for step in (1, 2):
                z = views(step)
                z[1][3, 2] = float("nan")
                mon.log(step, z)
    texts = [str(w.message) for w in caught if issubclass(w.category, NonFiniteWarning)]
    assert len(texts) == 1 and "z[1] at step 1 holds NaN or Inf" in texts[0] and "'unknown'" in texts[0], texts
    assert caught[0].filename == __file__  # points at the caller's line
