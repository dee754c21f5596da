"""Loggers beside ``metrics.jsonl``: a CSV of the scalars, TensorBoard event files, Weights & Biases.

All of them are fed from one place, :class:`siamlab.engine.runlog.MetricsLog`, with the records the
engine (or :class:`siamlab.Monitor`) already writes to ``metrics.jsonl``. None of them runs in the
training step: ``MetricsLog.write`` puts the record on a queue (a few microseconds) and one background
thread, :class:`siamlab.engine.runlog.LoggerThread`, feeds the loggers; ``close()`` drains the queue and
closes them (``python benchmarks/bench_loggers.py`` measures the cost to the writer).

Which loggers (``engine.loggers``, default ``[csv, tensorboard]``):

* ``csv``: ``metrics.csv``, one row per scalar: ``kind,step,epoch,name,value`` (a long table, since
  train / diag / eval records carry different metrics; ``pandas.read_csv(...).pivot_table`` widens it).
* ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``), one
  scalar per metric tagged ``<kind>/<name>``, at the record's step. Skipped with one note (once per
  process) when the ``tensorboard`` package is not installed (it is optional:
  ``pip install "siamlab[tensorboard]"``; ``scripts/install.sh`` installs it).
* ``wandb``: Weights & Biases (``engine.wandb_project``; ``WANDB_MODE=offline`` works without network).
  Only when listed; a ConfigError when listed but ``wandb`` is not installed.

Random-init evaluations go under kind ``eval_random_init``; non-numeric values (event names, verdict
strings) stay in ``metrics.jsonl`` only; non-finite numbers are written as NaN / ±Inf. On resume,
rows after the checkpoint's step are dropped from the CSV and TensorBoard purges them (``purge_step``).
"""
from __future__ import annotations

import csv
import math
import sys
import uuid
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from .runlog import atomic_write_text

LOGGERS = ("csv", "tensorboard", "wandb")
_META = ("kind", "step", "epoch", "random_init")


def scalars(rec: dict) -> tuple:
    """(kind, step, epoch, {name: float}) of a metrics record: numbers only (bools and strings dropped;
    the run log's "nan"/"inf" strings become floats again)."""
    kind = rec["kind"] + ("_random_init" if rec.get("random_init") else "")
    out = {}
    for k, v in rec.items():
        if k in _META or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif isinstance(v, str) and v in ("nan", "inf", "-inf"):
            out[k] = float(v)
    return kind, int(rec["step"]), float(rec["epoch"]), out


class CsvLog:
    """``metrics.csv``: kind, step, epoch, name, value — one row per scalar, flushed per record."""

    HEADER = ["kind", "step", "epoch", "name", "value"]

    def __init__(self, path: Path, resume_step: Optional[int] = None):
        self.path = Path(path)
        if resume_step is not None and self.path.is_file():
            truncate_csv(self.path, resume_step)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")
        self._w = csv.writer(self._f)
        if new:
            self._w.writerow(self.HEADER)

    def write(self, rec: dict) -> None:
        kind, step, epoch, vals = scalars(rec)
        self._w.writerows([kind, step, epoch, k, repr(v) if math.isfinite(v) else str(v)] for k, v in vals.items())
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def truncate_csv(path: Path, max_step: int) -> None:
    """On resume: keep the header and the rows up to the checkpoint's step (and no row cut short by a kill)."""
    lines = Path(path).read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if _row_step(ln) is not None and _row_step(ln) <= max_step]
    atomic_write_text(path, "".join(keep))


def _row_step(line: str) -> Optional[int]:
    """The step of a complete row (five fields, ended by a newline); None for a row cut short by a kill."""
    parts = line.rstrip("\r\n").split(",")
    if not line.endswith("\n") or len(parts) != 5:
        return None
    try:
        float(parts[4])
        return int(parts[1])
    except ValueError:
        return None


class TensorBoardLog:
    """Event files through ``torch.utils.tensorboard.SummaryWriter`` (tags ``<kind>/<name>``). The writer
    (and its ~1 s import) is made on the first record, i.e. in the logger thread, not at the run's start."""

    def __init__(self, log_dir: Path, resume_step: Optional[int] = None):
        self.log_dir, self.purge_step = Path(log_dir), None if resume_step is None else resume_step + 1
        self._w = None

    def write(self, rec: dict) -> None:
        if self._w is None:
            from torch.utils.tensorboard import SummaryWriter

            self._w = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)
        kind, step, _, vals = scalars(rec)
        for k, v in vals.items():
            self._w.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


class WandbLog:
    """Weights & Biases: one ``wandb.log`` per record, keys ``<kind>/<name>``, at the record's step."""

    def __init__(self, run_dir: Path, project: str, config: Optional[dict], resume: bool):
        import wandb

        id_file = Path(run_dir) / "wandb_id.txt"
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else uuid.uuid4().hex[:8]
        atomic_write_text(id_file, run_id + "\n")
        self._run = wandb.init(project=project, name=Path(run_dir).name, id=run_id, resume="allow", dir=str(run_dir),
                               config=config or {})

    def write(self, rec: dict) -> None:
        kind, step, epoch, vals = scalars(rec)
        self._run.log({f"{kind}/{k}": v for k, v in vals.items()} | {"epoch": epoch}, step=step)

    def close(self) -> None:
        self._run.finish()


_NOTED = set()  # notes printed once per process (an experiment builds loggers for every arm)


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def build_loggers(names, run_dir: Path, resume_step: Optional[int] = None, wandb_project: str = "siamlab",
                  config: Optional[dict] = None) -> list:
    """The loggers named in ``names`` for ``run_dir`` (see the module docstring)."""
    bad = [n for n in names if n not in LOGGERS]
    if bad:
        raise ConfigError(f"engine.loggers={list(names)!r} is not valid: {bad[0]!r} is not one of {', '.join(LOGGERS)}.")
    out = []
    if "csv" in names:
        out.append(CsvLog(Path(run_dir) / "metrics.csv", resume_step))
    if "tensorboard" in names:
        if installed("tensorboard"):
            out.append(TensorBoardLog(Path(run_dir) / "tensorboard", resume_step))
        elif "tensorboard" not in _NOTED:
            _NOTED.add("tensorboard")
            print("siamlab: tensorboard is not installed, so no event files are written "
                  "(pip install 'siamlab[tensorboard]', or drop it from engine.loggers).", file=sys.stderr)
    if "wandb" in names:
        if not installed("wandb"):
            raise ConfigError("engine.loggers lists wandb but the wandb package is not installed; "
                              "pip install 'siamlab[wandb]' or remove wandb from engine.loggers.")
        out.append(WandbLog(run_dir, wandb_project, config, resume_step is not None))
    return out
