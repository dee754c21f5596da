"""One run of an experiment (an arm with one seed): what it needs, and running it here or in a worker process.

:func:`plan` runs in the process that drives the experiment and decides, from the run folder
``runs/<arm>-s<seed>/``, what the run needs: nothing (a finished run with the same config is *reused*; one in a
sibling experiment folder is copied and reused: :mod:`.cache` compares the configs field by field), a *resume* (an
interrupted run of the same config with a checkpoint), or a fresh run (a folder of another config is cleared). It
returns a :class:`Task` to run, or the finished :class:`~.measures.RunRecord` when nothing is to run (also for a
method that is missing or a config that does not parse).

:func:`execute` runs a Task — in this process or in a worker of :mod:`.pool`, so a Task holds only plain data: the
run's whole config (after ``--set`` overrides), or for an arm whose run is a function (``Arm.run``) its params and
the function's importable name. It never raises for a run-level failure: an error becomes the record's status and,
for an unexpected exception, the run folder's ``error.txt``.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import yaml

from .. import config as config_mod
from ..errors import SiamlabError
from ..report.files import write_result
from ..text import slug
from .cache import CHECKPOINT_ONLY, load_config, matches
from .measures import RunRecord
from .scales import arm_config, methods_needed

FINISHED = ("completed", "diverged")


@dataclass
class Task:
    """A run to make: everything :func:`execute` needs, as plain (picklable) data."""

    index: int  # position in the experiment's list of runs (records are listed in this order)
    label: str
    seed: int
    run_dir: str
    config: dict  # RunConfig.to_dict() after overrides, or a function arm's params
    resume: bool = False
    function: str = ""  # "module:qualname" of a function arm's run
    epochs: int = 0  # for the progress lines
    prefix: str = ""  # of the progress lines ("[zhang-t2 3/4] SimSiam s0")


@dataclass
class Done:
    """A run that needs no work: its record, and how ("reused", "reused (copied from <experiment folder>)", "not run",
    "error")."""

    record: RunRecord
    how: str


def read_history(run_dir: Path) -> list:
    from ..engine.runlog import read_metrics

    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


def read_summary(run_dir: Path) -> Optional[dict]:
    try:
        summ = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return summ if isinstance(summ, dict) else None


def _same(run_dir: Path, cfg: dict, function: bool) -> bool:
    if function:  # a function arm's params: plain values, compared as they are
        return load_config(run_dir / "config.yaml") == cfg
    return matches(run_dir, cfg, CHECKPOINT_ONLY)


def cached(run_dir: Path, cfg: dict, function: bool = False) -> Optional[dict]:
    """The summary of a finished run in ``run_dir`` made with the same config, else None."""
    summ = read_summary(run_dir)
    if summ is not None and summ.get("status") in FINISHED and _same(run_dir, cfg, function):
        return summ
    return None


def resumable(run_dir: Path, cfg: dict) -> bool:
    """An interrupted run of the same config with a checkpoint to resume from."""
    summ = read_summary(run_dir)
    return (summ is not None and summ.get("status") == "interrupted" and (run_dir / "checkpoints" / "last.pt").exists()
            and matches(run_dir, cfg))


def sibling(out_dir: Path, cfg: dict) -> Optional[Path]:
    """A finished run with the same config in another experiment folder next to this one."""
    for conf in out_dir.parent.glob("*/runs/*/config.yaml"):
        if conf.parent.parent.parent == out_dir:
            continue
        if cached(conf.parent, cfg) is not None:
            return conf.parent
    return None


def record(label: str, seed: int, run_dir: Path, summary: dict, seconds: Optional[float] = None, function: bool = False) -> RunRecord:
    """The record of a finished run from its summary and metrics. A function arm's final scalars
    (``summary["final"]``) are its measures, read as a probe's are (:func:`.measures.value`)."""
    secs = summary.get("seconds", seconds if seconds is not None else 0.0)
    probe = {k: v for k, v in (summary.get("final") or {}).items() if isinstance(v, (int, float))} if function else {}
    return RunRecord(label, seed, summary.get("status", "completed"), summary.get("message", ""), str(run_dir), float(secs),
                     summary, read_history(run_dir), probe)


def function_name(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def plan(exp, arm, scale: str, seed: int, index: int, out_dir: Path, available: set,
         overrides: Optional[list] = None) -> Union[Task, Done]:
    """What the run of ``arm`` with ``seed`` needs (module docstring)."""
    cfg_dict = arm_config(exp, arm, scale, seed)
    run_dir = out_dir / "runs" / f"{slug(arm.label)}-s{seed}"
    if arm.run is not None:
        summ = cached(run_dir, cfg_dict, function=True)
        if summ is not None:
            return Done(record(arm.label, seed, run_dir, summ, function=True), "reused")
        return Task(index, arm.label, seed, str(run_dir), cfg_dict, function=function_name(arm.run))
    missing = [m for m in methods_needed(cfg_dict) if m not in available]
    if missing:
        return Done(RunRecord(arm.label, seed, "not run", f"method {missing[0]} missing"), "not run")
    try:
        cfg = config_mod.from_dict(cfg_dict)
        config_mod.apply_overrides(cfg, overrides)
    except SiamlabError as err:
        return Done(RunRecord(arm.label, seed, "error", f"config: {err}", str(run_dir)), "error")
    current = cfg.to_dict()
    summ = cached(run_dir, current)
    if summ is not None:
        return Done(record(arm.label, seed, run_dir, summ), "reused")
    resume = resumable(run_dir, current)
    if not resume:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        twin = sibling(out_dir, current)
        if twin is not None:  # the same run already made for another experiment: copy it
            shutil.copytree(twin, run_dir)
            summ = cached(run_dir, current)
            if summ is not None:
                return Done(record(arm.label, seed, run_dir, summ), f"reused (copied from {twin.parent.parent.name})")
    return Task(index, arm.label, seed, str(run_dir), current, resume=resume, epochs=cfg.optim.epochs)


class EpochLines:
    """Prints one line per finished epoch of a run (and its kNN when evaluated) by following metrics.jsonl."""

    def __init__(self, run_dir: Path, epochs: int, prefix: str, log: Callable[[str], None], every_s: float = 2.0):
        self.path, self.epochs, self.prefix, self.log, self.every_s = run_dir / "metrics.jsonl", epochs, prefix, log, every_s
        self._stop = threading.Event()
        self._pos, self._t0 = 0, time.time()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.poll()  # the rows written since the last poll

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, 2) < self._pos:  # the file was restarted
                    self._pos = 0
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        self._pos += end
        for line in chunk[:end].splitlines():
            try:
                self._row(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError):
                continue

    def _row(self, row: dict) -> None:
        epoch = row.get("epoch")
        if row.get("kind") == "train" and isinstance(epoch, (int, float)) and epoch >= 1 and float(epoch).is_integer():
            loss = row.get("loss")
            loss_text = f"loss {loss:.4f}" if isinstance(loss, (int, float)) else f"loss {loss}"
            self.log(f"{self.prefix} epoch {int(epoch)}/{self.epochs}: {loss_text} ({time.time() - self._t0:.0f}s)")
        elif row.get("kind") == "eval" and not row.get("random_init") and isinstance(row.get("knn_backbone"), (int, float)):
            self.log(f"{self.prefix} epoch {int(epoch or 0)}/{self.epochs}: kNN {row['knn_backbone']:.1f}%")


def _crash(task: Task, err: Exception, t0: float) -> RunRecord:
    """An unexpected exception (an engine or method bug) becomes an "error" record and the run's error.txt."""
    with contextlib.suppress(SiamlabError, OSError):  # a crash log that cannot be written loses only itself
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        write_result(Path(task.run_dir) / "error.txt", traceback.format_exc())
    return RunRecord(task.label, task.seed, "error", f"{type(err).__name__}: {err}", task.run_dir, time.time() - t0)


def _run_function(task: Task) -> RunRecord:
    """A function arm's run: ``run(params, seed) -> (summary, history)``, written as a training run's folder is."""
    import torch

    module, name = task.function.split(":", 1)
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    threads = (task.config.get("engine") or {}).get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    run_dir, t0 = Path(task.run_dir), time.time()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    write_result(run_dir / "config.yaml", yaml.safe_dump(task.config, sort_keys=False))
    summary, history = fn(task.config, task.seed)
    summary = {"status": "completed", **summary, "seconds": round(time.time() - t0, 3)}
    write_result(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    write_result(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return record(task.label, task.seed, run_dir, summary, function=True)


def execute(task: Task, log: Callable[[str], None]) -> RunRecord:
    """Make the run of ``task`` (module docstring); ``log`` gets one line per epoch."""
    t0 = time.time()
    try:
        if task.function:
            return _run_function(task)
        from ..engine.trainer import train

        cfg = config_mod.from_dict(task.config)
        with EpochLines(Path(task.run_dir), task.epochs, task.prefix, log):
            summary = train(cfg, run_dir=task.run_dir, resume=task.resume).summary
    except SiamlabError as err:
        return RunRecord(task.label, task.seed, "error", str(err), task.run_dir, time.time() - t0)
    except Exception as err:  # an engine/method bug must not hide the other arms' results
        return _crash(task, err, t0)
    return record(task.label, task.seed, Path(task.run_dir), summary, time.time() - t0)
