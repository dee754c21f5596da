"""The lock of a run directory: one process writes a run at a time (:mod:`siamlab.engine.rundir` has the rules).

Training, resuming and a Monitor hold ``RUN/.lock`` for their whole life: an exclusive
``fcntl.flock`` on that file, which the kernel releases when the process ends in any way (exit,
exception, SIGKILL, a crash of the machine), so a crashed run never leaves the directory locked.
The file records who holds it — ``pid``, ``host``, ``started`` (Unix time) and the process's kernel
start time ``proc_start`` — so the refusal can say which process to wait for. Where the file system
has no ``flock`` (some network mounts) the record itself is the lock, created only where none exists (a
finished record hard-linked into place, so two processes never both take it); it is *stale*, and taken
over, when its host is this machine and its pid is not running or is running with another kernel start
time (the pid was reused); a lock held from another host is honoured until the file is deleted by hand.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from ..atomic import TEMP_SUFFIX
from ..errors import SiamlabError

LOCK_NAME = ".lock"
RECORD_TRIES = 20  # no-flock file systems: attempts to take a record lock that keeps being removed and re-made
BREAKER_STALE_S = 10.0


class RunDirError(SiamlabError):
    """A run directory cannot be used: it holds another run, or another process is writing into it."""


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
