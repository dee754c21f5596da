"""What :class:`siamlab.Monitor` checks and writes around its diagnostics.

* **Its folder** follows the rules of a training run's directory (:mod:`siamlab.engine.rundir`, README "Train"):
  a folder that already holds a run is refused in one sentence unless ``resume=True`` (continue it) or
  ``overwrite=True`` (its run files are removed first, nothing else); the folder's lock (``.lock``, the
  training runs' :class:`~siamlab.engine.runlock.RunLock`) is held from the Monitor's creation to its
  ``close()``, so a Monitor and a training run (or two Monitors) never write one folder at once. On resume,
  the records of the steps from the first one logged again onwards are dropped from ``metrics.jsonl`` and the
  loggers' files, as a resumed training run drops what came after its checkpoint.
* **Its files**: ``metrics.jsonl`` (appended), the loggers beside it (:mod:`siamlab.engine.loggers`) and
  ``summary.json`` (atomic); a write that fails is one sentence naming the file and how to continue.
* **Its input**: ``every`` and the views handed to :meth:`~siamlab.interop.monitor.Monitor.log`, refused in one
  sentence naming the argument, the value and the fix (:class:`MonitorError`); non-finite embeddings are
  reported once (:class:`NonFiniteWarning`).
"""
from __future__ import annotations

import numbers
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch

from .. import collectives
from ..engine.loggers import LOGGERS, build_loggers
from ..engine.rundir import MONITOR, claim, remove_if_only_lock, way_on
from ..engine.runlog import FREE_SPACE, MetricsLog, WriteFailed, read_metrics, truncate_metrics, write_json
from ..errors import SiamlabError


class MonitorError(SiamlabError, ValueError):
    """A Monitor was given what it cannot use: one sentence naming the argument, its value and the fix."""


class NonFiniteWarning(UserWarning):
    """Embeddings handed to a Monitor held NaN or Inf values (issued once per Monitor)."""


# --- arguments ------------------------------------------------------------------------------------
def check_every(every) -> int:
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise MonitorError(f"Monitor(every={every!r}) is not valid: expected an integer >= 1, the steps between "
                           "two diagnostics (e.g. every=50).")
    return int(every)


def check_loggers(loggers) -> list:
    names = [loggers] if isinstance(loggers, str) else list(loggers)
    bad = [n for n in names if n not in LOGGERS]
    if bad:
        raise MonitorError(f"Monitor(loggers={loggers!r}) is not valid: {bad[0]!r} is not one of {', '.join(LOGGERS)}.")
    return names


def _check_list(name: str, views, where: str) -> list:
    if isinstance(views, torch.Tensor) or not isinstance(views, Sequence) or not len(views):
        got = f"a tensor of shape {tuple(views.shape)}" if isinstance(views, torch.Tensor) else repr(views)[:60]
        raise MonitorError(f"{where}: {name} must be a non-empty list with one [batch, dim] tensor per view "
                           f"(e.g. [{name}1, {name}2]), got {got}.")
    for i, t in enumerate(views):
        if not isinstance(t, torch.Tensor):
            raise MonitorError(f"{where}: {name}[{i}] is a {type(t).__name__}, not a tensor; pass the views' "
                               "embeddings as [batch, dim] tensors.")
        if t.ndim != 2 or t.shape[1] < 1:
            raise MonitorError(f"{where}: {name}[{i}] has shape {tuple(t.shape)}, not [batch, dim]; pass a 2-D "
                               f"tensor with one row per sample (a feature map: {name}[{i}].flatten(1)).")
        if t.shape != views[0].shape:
            raise MonitorError(f"{where}: {name}[{i}] has shape {tuple(t.shape)} but {name}[0] has "
                               f"{tuple(views[0].shape)}; every view must hold the same samples in the same dimension.")
    if views[0].shape[0] < 2:
        raise MonitorError(f"{where}: {name} holds a batch of {views[0].shape[0]} sample; the diagnostics (std, "
                           "center, covariance) need at least 2, so log a batch of 2 or more.")
    return list(views)


def check_views(step, z, p) -> tuple:
    """(z, p) as lists after checking them: non-empty lists of 2-D tensors of one shape, a batch of at least 2,
    and ``p`` (if given) no more views than ``z`` and the same batch."""
    where = f"Monitor.log(step={step!r})"
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise MonitorError(f"{where} is not valid: step must be an integer (the loop's step counter).")
    z = _check_list("z", z, where)
    if p is None:
        return z, None
    p = _check_list("p", p, where)
    if len(p) > len(z) or p[0].shape[0] != z[0].shape[0]:
        raise MonitorError(f"{where}: p holds {len(p)} view(s) of batch {p[0].shape[0]} for {len(z)} view(s) of z of "
                           f"batch {z[0].shape[0]}; pass the predictor's outputs of the same samples, one per view.")
    return z, p


def first_nonfinite(z: list, p: Optional[list]) -> Optional[str]:
    """The name (``z[0]``, ``p[1]`` ...) of the first view holding NaN or Inf, else None."""
    for name, views in (("z", z), ("p", p or [])):
        for i, t in enumerate(views):
            if not bool(torch.isfinite(t.detach()).all()):
                return f"{name}[{i}]"
    return None


def warn_nonfinite(step: int, which: str) -> None:
    warnings.warn(f"siamlab.Monitor: {which} at step {step} holds NaN or Inf values, so this step's diagnostics are "
                  "NaN and the verdict stays 'unknown' until finite embeddings come (the loss or the learning rate may "
                  "have diverged).", NonFiniteWarning, stacklevel=3)


# --- the folder -----------------------------------------------------------------------------------
class MonitorFiles:
    """The folder of one monitored loop, claimed and locked (module docstring); ``history``: its records so far
    (read back on resume), in the form the verdicts read."""

    def __init__(self, out_dir, loggers: Sequence[str], resume: bool = False, overwrite: bool = False):
        self.loggers = check_loggers(loggers)
        self.main = collectives.is_main()
        self.out_dir, self.lock, created = claim(lambda: Path(out_dir), resume, overwrite, MONITOR)
        self.metrics = self.out_dir / "metrics.jsonl"
        self._log: Optional[MetricsLog] = None
        self.closed = False
        try:
            history = read_metrics(self.metrics) if resume and self.main and self.metrics.is_file() else []
            self.history: list = collectives.broadcast_object(history)  # every rank judges the same records
            if not resume:
                self._open(None)
        except BaseException as err:
            self._release()
            if created:
                remove_if_only_lock(self.out_dir)
            if isinstance(err, WriteFailed):
                raise self._reworded(err) from None
            raise

    def _open(self, resume_step: Optional[int]) -> None:
        loggers = build_loggers(self.loggers, self.out_dir, resume_step) if self.main else ()
        self._log = MetricsLog(self.metrics, enabled=self.main, loggers=loggers)

    def _reworded(self, err: WriteFailed) -> WriteFailed:
        return err.with_fix(f"{FREE_SPACE}, then {way_on(self.out_dir, MONITOR)}")

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def check_open(self, call: str) -> None:
        if self.closed:
            raise MonitorError(f"Monitor.{call} after close(): the Monitor of {str(self.out_dir)!r} is closed; continue "
                               f"its run with a new {MONITOR.resume.format(run=str(self.out_dir))}.")

    def write(self, kind: str, step: int, epoch: float, vals: dict) -> None:
        """Append a record; the first one after ``resume=True`` first drops the records from its step on."""
        try:
            if self._log is None:
                keep = int(step) - 1
                if self.main:
                    truncate_metrics(self.metrics, keep)
                self.history[:] = [r for r in self.history if r.get("step", 0) <= keep or r.get("kind") == "event"]
                self._open(keep)
            self._log.write(kind, step, epoch, **vals)
        except WriteFailed as err:
            raise self._reworded(err) from None

    def close(self, summary: dict) -> None:
        """Close the metrics, write ``summary.json`` (rank 0) and free the folder."""
        self.closed = True
        try:
            if self._log is not None:
                self._log.close()
            if self.main:
                write_json(self.out_dir / "summary.json", summary)
        except WriteFailed as err:
            raise self._reworded(err) from None
        finally:
            self._release()
