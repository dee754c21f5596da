"""A full disk or a kill during a write loses nothing (issue 14 item 2): the run stops with one sentence and
status ``write_failed`` in summary.json, the last good checkpoint loads, and no temporary file is left, neither
at the failing write nor after a SIGKILL mid-checkpoint once the run is resumed."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.cli import main
from siamlab.engine.runlog import TEMP_SUFFIX
from siamlab.engine.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[1]
TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=64", "model.proj_hidden=64",
       "model.proj_out=32", "model.pred_hidden=16", "optim.batch_size=64", "optim.epochs=3", "diag.every_steps=0",
       "eval.knn_k=10", "eval.every_epochs=1", "eval.online_probe=false", "engine.progress=false"]
STEPS_PER_EPOCH = 1500 // 64  # blobs: 1500 training samples


def toy(out: Path, *extra):
    return config.load(None, TOY + [f"engine.out={out}", "engine.run_name=run", *extra])


def temp_files(run: Path) -> list:
    return sorted(p.name for p in run.rglob(f"*{TEMP_SUFFIX}"))


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def assert_stopped_by_the_write(run: Path, capsys_err: str, words: list) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "write_failed", summary
    for w in words:
        assert w in summary["message"], (w, summary["message"])
    assert temp_files(run) == []
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # the last good checkpoint loads
    assert state["step"] == STEPS_PER_EPOCH and state["epoch"] == 1
    assert "Traceback" not in capsys_err
    return summary


# --- a patched writer (any machine) --------------------------------------------------------------------
def test_enospc_in_a_checkpoint_write_stops_the_run_with_one_sentence(tmp_path, monkeypatch, capsys):
    """The second write of last.pt fails with ENOSPC after its temporary file is full (the fsync): the CLI
    prints the status with the sentence and exits 3; the temporary file is gone at once."""
    real, seen = os.fsync, []

    def fsync(fd):
        name = fd_path(fd)
        if ".last.pt." in name:
            seen.append(name)
            if len(seen) == 2:
                assert Path(name).exists()  # the temporary file is there while it is written ...
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    argv = ["train"] + sum((["--set", s] for s in TOY + [f"engine.out={tmp_path}", "engine.run_name=run"]), [])
    assert main(argv) == 3
    out, err = capsys.readouterr()
    status = [x for x in out.splitlines() if x.startswith("status:")]
    assert status and "write_failed" in status[0] and "No space left on device" in status[0], out
    assert not Path(seen[1]).exists()  # ... and removed at the failing write
    run = tmp_path / "run"
    assert_stopped_by_the_write(run, err, ["last.pt", "No space left on device", "--resume"])
    monkeypatch.setattr(os, "fsync", real)  # space is free again: the run continues from epoch 1
    res = train(toy(tmp_path), run_dir=str(run), resume=True)
    assert res.summary["status"] == "completed" and res.summary["steps"] == 3 * STEPS_PER_EPOCH


def test_enospc_in_the_metrics_log_stops_the_run(tmp_path):
    t = Trainer(toy(tmp_path))
    real = t.log._f

    class FullDisk:
        def __init__(self):
            self.lines = 0

        def write(self, text):
            self.lines += 1
            if t.epoch >= 1 and t.step_in_epoch > 0:  # the second epoch's first record
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real.write(text)

        def flush(self):
            real.flush()

        def close(self):
            real.close()

    t.log._f = FullDisk()
    res = t.fit()
    assert_stopped_by_the_write(res.run_dir, "", ["metrics.jsonl", "No space left on device"])
    assert not t.lock  # the run directory is free for the resume


def full_disk_at(monkeypatch, name: str) -> list:
    """os.fsync fails with ENOSPC for the temporary file of an atomic write of ``name`` (a plain write never
    calls fsync, so it would go through and replace the file); returns the temporary paths seen."""
    real, seen = os.fsync, []

    def fsync(fd):
        if f".{name}." in fd_path(fd):
            seen.append(fd_path(fd))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_wandb_id_is_written_atomically(tmp_path, monkeypatch):
    import types

    from siamlab.engine.loggers import WandbLog
    from siamlab.engine.runlog import WriteFailed

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: types.SimpleNamespace(**kw)))
    (tmp_path / "wandb_id.txt").write_text("old-id\n")
    seen = full_disk_at(monkeypatch, "wandb_id.txt")
    with pytest.raises(WriteFailed, match=r"could not write .*wandb_id\.txt \(No space left on device\)"):
        WandbLog(tmp_path, "p", {}, resume=False)
    assert seen and (tmp_path / "wandb_id.txt").read_text() == "old-id\n" and temp_files(tmp_path) == []
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: types.SimpleNamespace(**kw)))
    assert WandbLog(tmp_path, "p", {}, resume=True)._run.id == "old-id"


def test_error_traceback_is_written_atomically(tmp_path, monkeypatch):
    from siamlab.engine.failures import write_traceback

    (tmp_path / "error-rank0.txt").write_text("an earlier failure")
    seen = full_disk_at(monkeypatch, "error-rank0.txt")
    assert write_traceback(tmp_path, 0, ValueError("boom")) is None  # the failure is still reported, without it
    assert seen and (tmp_path / "error-rank0.txt").read_text() == "an earlier failure" and temp_files(tmp_path) == []
    monkeypatch.undo()
    path = write_traceback(tmp_path, 0, ValueError("boom"))
    assert path.name == "error-rank0.txt" and "ValueError: boom" in path.read_text()


# --- a real full disk: a small tmpfs (root only) --------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the patched-writer test covers ENOSPC here")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the patched-writer test covers ENOSPC")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_tmpfs_keeps_the_last_good_checkpoint(small_disk, monkeypatch):
    """After epoch 1 the disk is filled up to half a checkpoint's size: epoch 2's checkpoint cannot be
    written (ENOSPC from the kernel, no patching), the run says so and the epoch-1 checkpoint loads."""
    import siamlab.engine.loop as loop

    real_end = loop.end_of_epoch

    def end_then_fill(tr):
        ok = real_end(tr)
        if tr.epoch == 1:
            size = (tr.ckpt_dir / "last.pt").stat().st_size
            assert size > 64 * 1024  # so that the metrics lines and the summary fit in what is left
            st = os.statvfs(small_disk)
            (small_disk / "ballast").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - size // 2))
        return ok

    monkeypatch.setattr(loop, "end_of_epoch", end_then_fill)
    res = train(toy(small_disk))
    summary = assert_stopped_by_the_write(res.run_dir, "", ["No space left on device", "checkpoints"])
    assert summary["epochs_done"] == 2


# --- SIGKILL in the middle of a checkpoint write ---------------------------------------------------------
KILLED_WRITER = """
import os, sys, time
real, n = os.fsync, []
def fsync(fd):
    if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
        n.append(fd)
        if len(n) == 2:  # the second checkpoint: its temporary file is written, not yet renamed
            open(sys.argv[1], "w").close()
            time.sleep(600)
    return real(fd)
os.fsync = fsync
from siamlab.cli import main
sys.exit(main(sys.argv[2:]))
"""


def sigkill_at_marker(script: str, marker: Path, argv: list) -> None:
    """Run ``script`` (a Python program given ``marker`` and the CLI's ``argv``) and SIGKILL it once it has made
    ``marker``: no clean-up of any kind runs."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(marker), *argv], cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def test_sigkill_during_a_checkpoint_write_leaves_no_temp_file_after_resume(tmp_path):
    marker, run = tmp_path / "writing", tmp_path / "run"
    argv = ["train"] + sum((["--set", s] for s in TOY + [f"engine.out={tmp_path}", "engine.run_name=run"]), [])
    sigkill_at_marker(KILLED_WRITER, marker, argv)
    left = temp_files(run)
    assert len(left) == 1 and left[0].startswith(".last.pt."), left  # the kill left a half-done write
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == STEPS_PER_EPOCH
    t = Trainer(toy(tmp_path), run_dir=run, resume=True)  # the dead writer's lock does not stop it
    assert temp_files(run) == []  # removed when the run resumes
    assert t.step == STEPS_PER_EPOCH
    res = t.fit()
    assert res.summary["status"] == "completed" and temp_files(run) == []
