"""A run directory is never silently reused, has one writer at a time, and a crashed writer does not leave
it locked (issue 14 items 1 and 3: config checks before the first expensive step)."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siamlab import config
from siamlab.cli import main
from siamlab.engine import runlock
from siamlab.engine.runlock import LOCK_NAME, RunDirError, RunLock
from siamlab.engine.trainer import train
from siamlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
       "eval.knn_k=10", "eval.online_probe=false", "engine.progress=false"]


def toy(tmp_path, *extra):
    return config.load(None, TOY + [f"engine.out={tmp_path}", "engine.run_name=run", *extra])


def cli_set(tmp_path, *extra) -> list:
    return sum((["--set", s] for s in TOY + [f"engine.out={tmp_path}", "engine.run_name=run", *extra]), [])


def digest(folder: Path) -> dict:
    """Every file under ``folder`` (the lock file aside) with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def one_error_line(argv, capsys) -> str:
    assert main(argv) == 2
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: "), lines
    return lines[0]


# --- a new run never reuses a directory ------------------------------------------------------------
def test_run_name_reuse_is_refused_and_the_old_run_is_untouched(tmp_path, capsys):
    """The refusal names the ways out that work for the run there: a finished run cannot be taken further, so
    --resume is not offered for it; a run stopped with a checkpoint can be continued (issue 21 item 3)."""
    first = train(toy(tmp_path))
    before = digest(first.run_dir)
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt"} <= set(before)
    line = one_error_line(["train", *cli_set(tmp_path, "optim.lr=0.3")], capsys)
    assert str(first.run_dir) in line and "finished (status completed)" in line and "--resume" not in line, line
    assert "engine.run_name" in line and "--overwrite" in line
    assert digest(first.run_dir) == before  # byte-identical: config, metrics, summary, checkpoints
    summary = json.loads((first.run_dir / "summary.json").read_text())
    (first.run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    before = digest(first.run_dir)
    line = one_error_line(["train", *cli_set(tmp_path, "optim.lr=0.3")], capsys)
    assert f"continue it with `siamlab train --resume {first.run_dir}`" in line, line
    assert "engine.run_name" in line and "--overwrite" in line
    assert digest(first.run_dir) == before


def test_overwrite_replaces_the_run_but_nothing_else(tmp_path):
    first = train(toy(tmp_path))
    (first.run_dir / "notes.txt").write_text("mine")
    old_metrics = (first.run_dir / "metrics.jsonl").read_text()
    second = train(toy(tmp_path, "optim.lr=0.3"), overwrite=True)
    assert second.run_dir == first.run_dir and second.summary["status"] == "completed"
    assert "lr: 0.3" in (second.run_dir / "config.yaml").read_text()
    assert (second.run_dir / "metrics.jsonl").read_text() != old_metrics
    assert (second.run_dir / "notes.txt").read_text() == "mine"  # --overwrite removes a run's files only


def test_overwrite_removes_the_loggers_files_too(tmp_path):
    """metrics.csv was appended to (the old run's rows above the new run's), tensorboard/ held both runs' event
    files, and wandb_id.txt made W&B continue the old run: --overwrite removes them with the rest."""
    loggers = "engine.loggers=[csv, tensorboard]"
    first = train(toy(tmp_path, loggers))
    run = first.run_dir
    def rows():  # kind, step, epoch, name of each row (values such as views_per_s differ between runs)
        return [line.rsplit(",", 1)[0] for line in (run / "metrics.csv").read_text().splitlines()]

    first_rows = rows()
    assert first_rows[0] == "kind,step,epoch,name" and len(first_rows) > 1
    assert len(list((run / "tensorboard").glob("events.*"))) == 1
    (run / "wandb_id.txt").write_text("old-run\n")
    train(toy(tmp_path, loggers), overwrite=True)
    assert rows() == first_rows  # the same config: the same rows, once
    assert len(list((run / "tensorboard").glob("events.*"))) == 1
    assert not (run / "wandb_id.txt").exists()


def test_automatic_names_get_a_suffix_instead_of_colliding(tmp_path, monkeypatch):
    import siamlab.engine.rundir as rundir_mod

    monkeypatch.setattr(rundir_mod.time, "strftime", lambda fmt, *a: "20260101-000000")
    cfgs = [config.load(None, TOY + [f"engine.out={tmp_path}"]) for _ in range(2)]
    dirs = [train(c).run_dir for c in cfgs]
    assert [d.name for d in dirs] == ["simsiam-blobs-20260101-000000", "simsiam-blobs-20260101-000000-2"]


# --- every config check before the first expensive step -------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["method.name=bridge", "method.k=7"], ["method.k=7", "optim.batch_size=64"]),
    (["method.name=wmse", "method.w_size=48"], ["method.w_size=48"]),
    (["data.augment=zhang_a1"], ["data.augment", "vector data"]),
    (["model.backbone=convnet"], ["model.backbone", "vector data"]),
    (["data.train_subset=32"], ["optim.batch_size=64", "data.train_subset=32"]),
])
def test_config_refused_before_data_evaluation_or_run_directory(tmp_path, monkeypatch, extra, words):
    """BRIDGE's k not dividing the batch used to fail after the random-init evaluation, leaving a directory
    without summary.json; now no data is loaded and no directory is made."""
    import siamlab.data as data

    monkeypatch.setattr(data, "load_dataset", lambda *a: pytest.fail("data loaded before the config was checked"))
    with pytest.raises(ConfigError) as err:
        train(toy(tmp_path, *extra))
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_while_building_leaves_no_directory(tmp_path):
    from siamlab.errors import DataError

    with pytest.raises(DataError):
        train(toy(tmp_path, "data.name=cifar10", "model.backbone=convnet", "data.augment=auto",
                  f"data.root={tmp_path / 'nothing'}"))
    assert not (tmp_path / "run").exists()


# --- one writer at a time ----------------------------------------------------------------------------
def _writer(run: Path, *extra) -> subprocess.Popen:
    """A long training run in another process, writing into ``run``; returns once it has logged a step."""
    args = [sys.executable, "-m", "siamlab", "train", *cli_set(run.parent, "optim.epochs=500", "eval.every_epochs=0",
                                                               "optim.batch_size=16", *extra)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and '"train"' in metrics.read_text()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    return proc


def test_a_second_concurrent_writer_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    proc = _writer(run)
    try:
        for argv in (["train", "--resume", str(run)], ["train", *cli_set(tmp_path), "--overwrite"]):
            line = one_error_line(argv, capsys)
            assert f"process {proc.pid} on host {socket.gethostname()}" in line and "in use" in line, line
        assert (run / "config.yaml").exists() and (run / "checkpoints").is_dir()  # --overwrite deleted nothing
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    RunLock(run).acquire().release()  # its lock went with it


def test_a_killed_writer_leaves_no_stuck_lock(tmp_path):
    """SIGKILL allows no clean-up: the lock file keeps the dead writer's record, yet the lock is free (the
    kernel drops a flock with its process). tests/test_write_failures.py resumes a killed training run."""
    code = ("import sys, time; from siamlab.engine.runlock import RunLock; held = RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirError, match=f"process {proc.pid}"):
        RunLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_lock_is_exclusive_in_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunDirError, match=f"process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # free again


# --- file systems without flock: the record is the lock, and a stale one is taken over --------------
@pytest.fixture
def no_flock(monkeypatch):
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", refuse)


def _record(folder: Path, **rec) -> None:
    base = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "proc_start": None}
    (folder / LOCK_NAME).write_text(json.dumps({**base, **rec}))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_record_lock_of_a_dead_process_is_stale(tmp_path, no_flock):
    _record(tmp_path, pid=_dead_pid())
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_record_lock_of_a_live_process_holds(tmp_path, no_flock):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _record(tmp_path, pid=sleeper.pid, proc_start=runlock.proc_start(sleeper.pid))
        with pytest.raises(RunDirError, match=f"process {sleeper.pid}"):
            RunLock(tmp_path).acquire()
        _record(tmp_path, pid=sleeper.pid, proc_start=runlock.proc_start(sleeper.pid) + 1)  # pid reused by another
        RunLock(tmp_path).acquire().release()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_record_lock_from_another_host_is_never_taken(tmp_path, no_flock):
    _record(tmp_path, pid=_dead_pid(), host="elsewhere.example")
    with pytest.raises(RunDirError, match="on host elsewhere.example"):
        RunLock(tmp_path).acquire()


NO_FLOCK_HOLDER = (
    "import errno, sys, time\nfrom siamlab.engine import runlock\n"
    "def refuse(fd, op):\n    raise OSError(errno.ENOLCK, 'No locks available')\n"
    "runlock.fcntl.flock = refuse\nheld = runlock.RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\n"
    "time.sleep(60)\n")


def test_two_processes_cannot_both_take_a_stale_record(tmp_path, no_flock, monkeypatch):
    """The record lock read the record, then replaced it: a second process that took the (stale) lock between
    this process's read and its write lost its lock without knowing. Here the other process takes it exactly
    then; this process must find it busy, and the other's record must stay."""
    _record(tmp_path, pid=_dead_pid())
    lock_path, real_read, holder = tmp_path / LOCK_NAME, Path.read_text, []

    def read_then_race(self, *args, **kwargs):
        text = real_read(self, *args, **kwargs)
        if self == lock_path and not holder:  # the other process acquires right after this read
            holder.append(subprocess.Popen([sys.executable, "-c", NO_FLOCK_HOLDER, str(tmp_path)], cwd=ROOT,
                                           stdout=subprocess.PIPE, text=True))
            assert holder[0].stdout.readline().strip() == "locked"
        return text

    monkeypatch.setattr(Path, "read_text", read_then_race)
    try:
        with pytest.raises(RunDirError, match="is in use by process") as busy:
            RunLock(tmp_path).acquire()
        assert f"process {holder[0].pid} " in str(busy.value)
        assert json.loads(real_read(lock_path))["pid"] == holder[0].pid
    finally:
        for p in holder:
            p.kill()
            p.wait()
    monkeypatch.setattr(Path, "read_text", real_read)
    RunLock(tmp_path).acquire().release()  # its holder is gone: stale, taken over
    assert not lock_path.exists()
    RunLock(tmp_path / "fresh").run_dir.mkdir()
    with RunLock(tmp_path / "fresh") as lock:  # no record yet (only the empty file acquire opens)
        assert json.loads(real_read(lock.path))["pid"] == os.getpid()


def test_unwritable_or_missing_folders_are_one_sentence(tmp_path):
    with pytest.raises(RunDirError, match="holds no run"):
        train(toy(tmp_path), run_dir=str(tmp_path / "never-trained"), resume=True)
    assert not (tmp_path / "never-trained").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError, match="cannot write into run directory"):
        train(toy(blocker))  # engine.out is a file: the run directory cannot be made
