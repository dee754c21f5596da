"""Run directory: resolved config, metrics appended as JSON lines, atomic JSON/checkpoint writes.

Every file training writes into a run is written atomically — config, summary, checkpoints, snapshots,
``wandb_id.txt``, ``error-rank<R>.txt`` — except the two logs that grow by appending, ``metrics.jsonl``
and ``metrics.csv`` (a line cut short by a kill is skipped by :func:`read_metrics` and dropped from both
at the next resume, which rewrites them atomically without the rows after its checkpoint), and the lock
record ``.lock`` (:mod:`siamlab.engine.rundir`). TensorBoard's event files and W&B's folder are written by
those libraries. Atomically means: into a temporary file
``.<name>.<random>.siamlab-tmp`` in the target's folder, flushed to disk, then renamed over the target,
so a kill leaves either the old file or the new one. A write that fails (a full disk: ENOSPC, a quota,
an I/O error, permissions) removes its temporary file at once and raises :class:`WriteFailed`, one
sentence naming the file and the reason; the previous version of the file is untouched (the last good
checkpoint stays loadable). Temporary files a killed process left behind are removed when the run next
starts or resumes (:func:`siamlab.engine.rundir.remove_temp_files`).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import queue
import sys
import threading
from pathlib import Path
from typing import Sequence

import torch

from .. import atomic
from ..errors import SiamlabError

TEMP_SUFFIX = atomic.TEMP_SUFFIX  # temporary files of atomic writes: .<name>.<random>.siamlab-tmp


FREE_SPACE = "free space (or fix the folder's permissions)"


class WriteFailed(SiamlabError):
    """A run file could not be written (disk full, quota, I/O error, permissions): ``path``, ``reason`` and the
    ``fix``, which the writer that knows the state words (:func:`siamlab.engine.rundir.way_on`: resume from the
    last good checkpoint, or start again when there is none)."""

    def __init__(self, path, reason: str, fix: str = f"{FREE_SPACE} and run the command again"):
        self.path, self.reason, self.fix = Path(path), reason, fix
        super().__init__(f"could not write {path} ({reason}); {fix}.")

    def with_fix(self, fix: str) -> "WriteFailed":
        return WriteFailed(self.path, self.reason, fix)


def write_failed(path: Path, err: OSError) -> WriteFailed:
    return WriteFailed(path, err.strerror or type(err).__name__)


def _clean(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf; keep them readable ("nan", "inf")
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file object whose contents replace ``path`` at once when the block ends without error
    (:func:`siamlab.atomic.atomic_file`); an OSError becomes :class:`WriteFailed`."""
    try:
        with atomic.atomic_file(path) as f:
            yield f
    except OSError as err:
        raise write_failed(Path(path), err) from err


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text.encode())


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically. The bytes are made in memory first, so that a full disk
    shows as the OSError of a plain write (torch's own writer reports it as a RuntimeError)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_file(path) as f:
        f.write(buf.getbuffer())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2) + "\n")


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes it immediately: the one place
    every record flows through. ``loggers`` (CSV, TensorBoard, W&B: :mod:`siamlab.engine.loggers`) get the
    same records from a :class:`LoggerThread`, so none of them runs in the training step."""

    def __init__(self, path: Path, enabled: bool = True, loggers: Sequence = ()):
        self.path = Path(path)
        self.enabled = enabled
        try:
            self._f = open(self.path, "a") if enabled else None
        except OSError as err:
            raise write_failed(self.path, err) from err
        self._thread = LoggerThread(loggers) if enabled and loggers else None

    def write(self, kind: str, step: int, epoch: float, **metrics) -> None:
        if not self.enabled:
            return
        rec = {"kind": kind, "step": int(step), "epoch": round(float(epoch), 4), **_clean(metrics)}
        try:
            self._f.write(json.dumps(rec) + "\n")
            self._f.flush()
        except OSError as err:  # a cut last line is skipped by readers (read_metrics)
            raise write_failed(self.path, err) from err
        if self._thread is not None:
            self._thread.put(rec)

    def close(self) -> None:
        """Close metrics.jsonl, then let the loggers write what is queued and close them."""
        if self._f:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):  # buffered lines were flushed or reported by write()
                f.close()
        if self._thread is not None:
            self._thread.close()
            self._thread = None


class LoggerThread:
    """Feeds ``loggers`` (objects with ``write(record)`` and ``close()``) from a queue in one daemon thread.
    A logger that raises is reported once on stderr and switched off; metrics.jsonl is unaffected."""

    _STOP = object()

    def __init__(self, loggers: Sequence):
        self.loggers = list(loggers)
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="siamlab-loggers", daemon=True)
        self._t.start()

    def put(self, rec: dict) -> None:
        self._q.put(rec)

    def _run(self) -> None:
        while (rec := self._q.get()) is not self._STOP:
            for lg in list(self.loggers):
                try:
                    lg.write(rec)
                except Exception as err:  # a logger must never stop training
                    print(f"siamlab: logger {type(lg).__name__} failed ({type(err).__name__}: {err}); it is switched off.",
                          file=sys.stderr)
                    self.loggers.remove(lg)
                    _close(lg)

    def close(self) -> None:
        """Write what is queued, then close every logger."""
        self._q.put(self._STOP)
        self._t.join()
        for lg in self.loggers:
            _close(lg)


def _close(logger) -> None:
    try:
        logger.close()
    except Exception as err:
        print(f"siamlab: closing logger {type(logger).__name__} failed ({type(err).__name__}: {err}).", file=sys.stderr)


def truncate_metrics(path: Path, max_step: int) -> None:
    """On resume: drop lines logged after the checkpoint's step (they will be produced again)."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if rec.get("step", 0) <= max_step or rec.get("kind") == "event":
            keep.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def read_metrics(path: Path) -> list[dict]:
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
