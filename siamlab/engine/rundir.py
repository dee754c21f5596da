"""A run directory has one writer at a time, is never silently reused, and holds no half-written files.

Rules (README "Train", issue 14):

* **New runs never reuse a directory.** A new run whose directory already holds a run (``config.yaml``,
  ``metrics.jsonl``, ``summary.json`` or ``checkpoints/``) is refused with one sentence: resume it
  (``siamlab train --resume RUN``), pick another ``engine.run_name``, or pass ``--overwrite`` to replace
  it. An automatic name (``<method>-<dataset>-<timestamp>``) that is taken gets a ``-2``, ``-3`` ... suffix.
* **One writer.** Training and resuming hold ``RUN/.lock`` for their whole life: an exclusive
  ``fcntl.flock`` on that file, which the kernel releases when the process ends in any way (exit,
  exception, SIGKILL, a crash of the machine), so a crashed run never leaves the directory locked.
  The file records who holds it — ``pid``, ``host``, ``started`` (Unix time) and the process's kernel
  start time ``proc_start`` — so the refusal can say which process to wait for. Where the file system
  has no ``flock`` (some network mounts) the record itself is the lock, created only where none exists (a
  finished record hard-linked into place, so two processes never both take it); it is *stale*, and taken
  over, when its host is this machine and its pid is not running or is running with another kernel start
  time (the pid was reused); a lock held from another host is honoured until the file is deleted by hand.
* **No half-written files.** Every write is atomic (a temporary file ``.<name>.<random>.siamlab-tmp``
  in the same folder, then ``os.replace``) except appending to ``metrics.jsonl`` and ``metrics.csv`` and
  the lock record (the list is in :mod:`siamlab.engine.runlog`). A failing write removes its temporary
  file at once; temporary files left by a killed process are removed when the run next starts or resumes,
  once the lock is held (so a live writer's file is never touched).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Optional

from .. import collectives
from ..errors import SiamlabError
from .runlog import TEMP_SUFFIX

LOCK_NAME = ".lock"
RECORD_TRIES = 20  # no-flock file systems: attempts to take a record lock that keeps being removed and re-made
BREAKER_STALE_S = 10.0
RUN_MARKERS = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints")  # any of these: the folder holds a run
# What --overwrite removes (with error-rank*.txt), nothing else: the run's files, its loggers' (siamlab.engine.loggers:
# left behind, metrics.csv would be appended to and tensorboard/ would mix two runs), and what `siamlab analyze` and
# `siamlab export` wrote from the old run.
RUN_OUTPUTS = RUN_MARKERS + ("snapshots", "metrics.csv", "tensorboard", "wandb_id.txt", "wandb", "analysis", "export")


class RunDirError(SiamlabError):
    """A run directory cannot be used: it holds another run, or another process is writing into it."""


def holds_run(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in RUN_MARKERS)


def free_name(run_dir: Path) -> Path:
    """``run_dir``, or the first of ``run_dir-2``, ``run_dir-3`` ... that holds no run (automatic names)."""
    path, k = Path(run_dir), 1
    while holds_run(path):
        k += 1
        path = Path(f"{run_dir}-{k}")
    return path


def refuse_existing(run_dir: Path) -> RunDirError:
    return RunDirError(
        f"run directory {str(run_dir)!r} already holds a run; continue it with `siamlab train --resume {run_dir}`, "
        "choose another engine.run_name, or pass --overwrite to replace it.")


def remove_outputs(run_dir: Path) -> None:
    """``--overwrite``: delete the files a run writes (never anything else a user keeps in the folder)."""
    run_dir = Path(run_dir)
    for path in [run_dir / n for n in RUN_OUTPUTS] + sorted(run_dir.glob("error-rank*.txt")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_temp_files(run_dir: Path) -> list:
    """Temporary files of atomic writes a killed process left in the run directory; returns what was removed.
    Call it only while holding the run's lock: a live writer's temporary file must not be touched."""
    run_dir = Path(run_dir)
    gone = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "snapshots"):
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


# --- the lock ------------------------------------------------------------------------------------
def proc_start(pid: int) -> Optional[int]:
    """The kernel start time of process ``pid`` (clock ticks after boot, field 22 of /proc/<pid>/stat), which
    tells a process from a later one that got the same pid; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_running(pid: int, start: Optional[int]) -> bool:
    """Whether process ``pid`` of this machine runs and is the one that started at kernel time ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists (another user's)
        pass
    now = proc_start(pid)
    return start is None or now is None or now == start


def _holder_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "proc_start": proc_start(os.getpid())}


def _record_text(path: Path) -> Optional[str]:
    """The lock file's text; None when there is no lock file."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def _parse_record(text: str) -> dict:
    try:
        rec = json.loads(text)
    except ValueError:
        return {}
    return rec if isinstance(rec, dict) else {}


def _read_record(path: Path) -> dict:
    return _parse_record(_record_text(path) or "")


def is_stale(rec: dict) -> bool:
    """A lock record (no-flock file systems) whose writer is gone: written on this host by a process that is not
    running any more (or whose pid now belongs to another process). Records from other hosts are never stale:
    siamlab cannot see their processes."""
    if rec.get("host") != socket.gethostname() or not isinstance(rec.get("pid"), int):
        return False
    return not is_running(rec["pid"], rec.get("proc_start"))


class RunLock:
    """Exclusive right to write into a run directory (the module docstring says how a stale lock is told).

    Held through an open file object: releasing it, or the object being garbage-collected with the
    Trainer that holds it, or the process ending, frees the lock."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._file = None
        self._by_record = False

    def acquire(self) -> "RunLock":
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise self._busy(_read_record(self.path)) from None
        except OSError:  # this file system has no flock: the record is the lock
            f.close()
            return self._acquire_by_record()
        f.truncate(0)
        f.write(json.dumps(_holder_record()) + "\n")
        f.flush()
        self._file = f
        return self

    def _acquire_by_record(self) -> "RunLock":
        """No flock here: the record is the lock. It is made whole in a temporary file and hard-linked to ``.lock``,
        which fails when ``.lock`` exists (open(2): the NFS-safe form of ``O_CREAT | O_EXCL``), so two processes
        never both take it; a stale record (or the empty file :meth:`acquire` opened) is removed first, by
        :meth:`_remove_if_still`."""
        for _ in range(RECORD_TRIES):
            if self._link_record():
                self._by_record = True
                return self
            text = _record_text(self.path)
            rec = _parse_record(text or "")
            if rec and rec.get("pid") != os.getpid() and not is_stale(rec):
                raise self._busy(rec)
            if text is not None:
                self._remove_if_still(text)
        raise self._busy(_read_record(self.path))

    def _link_record(self) -> bool:
        tmp = self.path.with_name(f"{LOCK_NAME}.{socket.gethostname()}.{os.getpid()}{TEMP_SUFFIX}")
        tmp.write_text(json.dumps(_holder_record()) + "\n")
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # NFS may report a link that was made as failed: the link count tells
            with contextlib.suppress(OSError):
                return tmp.stat().st_nlink == 2
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_if_still(self, text: str) -> None:
        """Delete ``.lock`` if it still holds ``text``, one process at a time: the one that creates ``.lock.breaking``
        (left for ``BREAKER_STALE_S`` by a process killed in these few microseconds, then removed). Under it,
        nothing else removes ``.lock``, and nothing replaces an existing one: it is the record that was read."""
        breaker = self.path.with_name(LOCK_NAME + ".breaking")
        try:
            os.close(os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - breaker.stat().st_mtime > BREAKER_STALE_S:
                    breaker.unlink()
            time.sleep(0.01)
            return
        try:
            if _record_text(self.path) == text:
                self.path.unlink(missing_ok=True)
        finally:
            breaker.unlink(missing_ok=True)

    def _busy(self, rec: dict) -> RunDirError:
        who = f"process {rec.get('pid', '?')} on host {rec.get('host', '?')}"
        if isinstance(rec.get("started"), (int, float)):
            who += f" (running since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rec['started']))})"
        return RunDirError(f"run directory {str(self.run_dir)!r} is in use by {who}; wait for that run to end or stop "
                           f"it (its lock {self.path} is released when the process ends, however it ends).")

    @property
    def held(self) -> bool:
        return self._file is not None or self._by_record

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # the file stays: deleting it would let two processes lock two different files
            self._file = None
        if self._by_record:
            if _read_record(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._by_record = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def open_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False) -> tuple[Path, RunLock]:
    """Lock the run directory for writing, as the rules of this module say; returns it and the held lock.

    New run: refused when the folder holds a run, unless ``overwrite`` (its outputs are then removed, under the
    lock). Resume: the folder must hold the run. Either way the temporary files of interrupted writes go.
    A folder that cannot be made or written (permissions, a read-only or full disk) is one sentence too.
    """
    run_dir = Path(run_dir)
    if resume and not holds_run(run_dir):
        raise RunDirError(f"cannot resume: {str(run_dir)!r} holds no run; pass the folder printed by `siamlab train`.")
    if not resume and holds_run(run_dir) and not overwrite:
        raise refuse_existing(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    except OSError as err:
        raise RunDirError(f"cannot write into run directory {str(run_dir)!r} ({err.strerror or type(err).__name__}); "
                          "choose another engine.out or fix the folder's permissions.") from None
    try:
        if not resume and holds_run(run_dir):
            if not overwrite:  # another process started a run here since the check above
                raise refuse_existing(run_dir)
            remove_outputs(run_dir)
        remove_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return run_dir, lock


def claim_run_dir(cfg, run_dir: Optional[Path], resume: bool, overwrite: bool) -> tuple:
    """(path, lock, created) of a run: rank 0 picks the directory (``run_dir``, else ``engine.out`` /
    ``engine.run_name``, else a free automatic name), checks and locks it (:func:`open_run_dir`); every rank
    gets its path, or the same one-sentence error. ``created``: the directory did not exist before."""
    path, lock, created, error = None, None, False, None
    if collectives.is_main():
        try:
            if run_dir is not None:
                path = Path(run_dir)
            elif cfg.engine.run_name:
                path = Path(cfg.engine.out) / cfg.engine.run_name
            else:  # an automatic name is never refused: a taken one gets a suffix
                path = free_name(Path(cfg.engine.out) / f"{cfg.method.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            created = not path.exists()
            path, lock = open_run_dir(path, resume=resume, overwrite=overwrite)
        except SiamlabError as err:
            error = err
    if collectives.is_dist():  # every rank must agree on the directory
        path, error = collectives.broadcast_object((None if path is None else str(path), error))
    if error is not None:
        raise error
    return Path(path), lock, created


def remove_if_only_lock(run_dir: Path) -> None:
    """A new run refused while it was being built leaves no trace: its directory goes when it holds nothing
    but the (released) lock file."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
        shutil.rmtree(run_dir, ignore_errors=True)
