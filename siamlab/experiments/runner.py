"""Run an experiment: every arm × seed through the public training API, then verdicts and outputs.

Layout of the experiment folder (default ``runs/reproduce/<id>-<scale>/``):
    runs/<arm>-s<seed>/   one training run each (config.yaml, metrics.jsonl, summary.json)
    results.json          everything the report and the README catalogue need
    results.csv, results.md, figures/*.png, report.html

Reuse: a run folder whose ``summary.json`` is finished (completed or diverged) and whose config.yaml
describes the same run (:mod:`.cache`: compared field by field; fields added to the config since count as
equal at their defaults) is reused; an interrupted one is resumed from its checkpoint; a finished run with
the same config in a sibling experiment folder is copied. So an interrupted ``reproduce`` continues where
it stopped.

SIGTERM / SIGINT stop the whole experiment: the current arm checkpoints and stops (the engine's handler),
no further arm starts, nothing is deleted, and :class:`ExperimentInterrupted` says how far it got.

Progress: one line per arm when it starts and ends, and one line per epoch while it trains (read from the
run's ``metrics.jsonl`` as the engine appends to it).
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from .. import config as config_mod
from ..errors import ConfigError, SiamlabError
from ..report.files import write_result
from .cache import matches
from .measures import RunRecord
from .results import Results
from .scales import arm_config, methods_needed
from ..text import slug
from .spec import Experiment

FINISHED = ("completed", "diverged")


class ExperimentInterrupted(SiamlabError):
    """A signal stopped ``reproduce``; finished runs are on disk and a rerun continues."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def default_out(exp_id: str, scale: str) -> Path:
    return Path("runs") / "reproduce" / f"{exp_id}-{scale}"


def _read_history(run_dir: Path) -> list:
    from ..engine.runlog import read_metrics

    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


def _summary(run_dir: Path) -> Optional[dict]:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _cached(run_dir: Path, cfg: dict) -> Optional[dict]:
    """The summary of a finished run in ``run_dir`` made with the same config (module docstring), else None."""
    summ = _summary(run_dir)
    if summ is not None and summ.get("status") in FINISHED and matches(run_dir, cfg):
        return summ
    return None


def _resumable(run_dir: Path, cfg: dict) -> bool:
    """An interrupted run of the same config with a checkpoint to resume from."""
    summ = _summary(run_dir)
    return (summ is not None and summ.get("status") == "interrupted" and (run_dir / "checkpoints" / "last.pt").exists()
            and matches(run_dir, cfg))


def _sibling(out_dir: Path, cfg: dict) -> Optional[Path]:
    """A finished run with the same config in another experiment folder next to this one."""
    for conf in out_dir.parent.glob("*/runs/*/config.yaml"):
        if conf.parent.parent.parent == out_dir:
            continue
        if _cached(conf.parent, cfg) is not None:
            return conf.parent
    return None


class EpochLines:
    """Prints one line per finished epoch of a run (and its kNN when evaluated) by following metrics.jsonl."""

    def __init__(self, run_dir: Path, epochs: int, prefix: str, log: Callable[[str], None], every_s: float = 2.0):
        self.path, self.epochs, self.prefix, self.log, self.every_s = run_dir / "metrics.jsonl", epochs, prefix, log, every_s
        self._stop = threading.Event()
        self._pos, self._last, self._t0 = 0, {}, time.time()
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
            self._last = row
            loss = row.get("loss")
            loss_text = f"loss {loss:.4f}" if isinstance(loss, (int, float)) else f"loss {loss}"
            self.log(f"{self.prefix} epoch {int(epoch)}/{self.epochs}: {loss_text} ({time.time() - self._t0:.0f}s)")
        elif row.get("kind") == "eval" and not row.get("random_init") and isinstance(row.get("knn_backbone"), (int, float)):
            self.log(f"{self.prefix} epoch {int(epoch or 0)}/{self.epochs}: kNN {row['knn_backbone']:.1f}%")


def run_one(exp: Experiment, arm, scale: str, seed: int, out_dir: Path, available: set, overrides: Optional[list] = None,
            log: Optional[Callable[[str], None]] = None, prefix: str = "") -> RunRecord:
    """Train one arm with one seed; never raises for a user-level or run-level failure (it is recorded)."""
    from ..engine.trainer import train

    cfg_dict = arm_config(exp, arm, scale, seed)
    missing = [m for m in methods_needed(cfg_dict) if m not in available]
    if missing:
        return RunRecord(arm.label, seed, "not run", f"method {missing[0]} missing")
    run_dir = out_dir / "runs" / f"{slug(arm.label)}-s{seed}"
    try:
        cfg = config_mod.from_dict(cfg_dict)
        config_mod.apply_overrides(cfg, overrides)
    except SiamlabError as err:
        return RunRecord(arm.label, seed, "error", f"config: {err}", str(run_dir))
    current = cfg.to_dict()
    summary = _cached(run_dir, current)
    resume = summary is None and _resumable(run_dir, current)
    t0 = time.time()
    if summary is None and not resume:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        twin = _sibling(out_dir, current)
        if twin is not None:  # the same run already made for another experiment: copy it
            shutil.copytree(twin, run_dir)
            summary = _cached(run_dir, current)
    if summary is None:
        try:
            with EpochLines(run_dir, cfg.optim.epochs, prefix, log or (lambda s: None)):
                summary = train(cfg, run_dir=str(run_dir), resume=resume).summary
        except SiamlabError as err:
            return RunRecord(arm.label, seed, "error", str(err), str(run_dir), time.time() - t0)
        except Exception as err:  # an engine/method bug must not hide the other arms' results
            with contextlib.suppress(SiamlabError):  # a crash log that cannot be written loses only itself
                write_result(run_dir / "error.txt", traceback.format_exc())
            return RunRecord(arm.label, seed, "error", f"{type(err).__name__}: {err}", str(run_dir), time.time() - t0)
    seconds = float(summary.get("seconds", time.time() - t0))
    return RunRecord(arm.label, seed, summary.get("status", "completed"), summary.get("message", ""), str(run_dir),
                     seconds, summary, _read_history(run_dir))


def _line(rec: RunRecord) -> str:
    final = rec.summary.get("final") or {}
    knn = final.get("knn_backbone")
    parts = [f"{rec.label} seed {rec.seed}: {rec.status}"]
    verdict = (rec.summary.get("verdict") or {}).get("verdict")
    if verdict:
        parts.append(verdict)
    if isinstance(knn, (int, float)):
        parts.append(f"kNN {knn:.1f}%")
    if rec.message:
        parts.append(rec.message)
    parts.append(f"{rec.seconds:.0f}s")
    return " | ".join(parts)


def _signal_of(rec: RunRecord) -> Optional[int]:
    """The signal that stopped a run (the engine writes "stopped by signal SIGTERM at step N")."""
    if rec.status != "interrupted":
        return None
    m = re.search(r"signal (SIG[A-Z]+)", rec.message or "")
    return int(getattr(signal.Signals, m.group(1), signal.SIGTERM)) if m else int(signal.SIGTERM)


def run_experiment(exp: Experiment, scale: str = "smoke", seeds: Optional[int] = None, out: Optional[str] = None,
                   log: Callable[[str], None] = print, overrides: Optional[list] = None) -> Path:
    """Run (or reuse) every arm × seed, then write results, figures and the report. Returns the folder.

    ``overrides``: ``key=value`` strings applied to every run last (e.g. ``data.root=...`` at paper scale).
    Raises :class:`ExperimentInterrupted` when a signal stopped it (finished runs stay on disk).
    """
    from ..methods import available as available_methods
    from . import outputs

    out_dir = Path(out) if out else default_out(exp.id, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_seeds = int(seeds or exp.seeds.get(scale, 1))
    config_mod.apply_overrides(config_mod.RunConfig(), overrides)  # a bad key is a user error: fail before any run
    avail = set(available_methods())
    jobs = [(arm, s) for arm in exp.arms_for(scale) for s in range(n_seeds)]
    seen: dict = {}
    for arm in exp.arms_for(scale):
        other = seen.setdefault(slug(arm.label), arm.label)
        if other != arm.label:
            raise ConfigError(f"{exp.id}: the arm labels {other!r} and {arm.label!r} share the run folder "
                              f"runs/{slug(arm.label)}-s<seed> (labels that differ only in spaces, underscores or a "
                              "spelled-out symbol such as τ / tau do); make them differ in letters or digits.")
    t0 = time.time()
    records = []
    from ..engine.signals import StopFlag  # SIGTERM / SIGINT between runs set a flag (inside a run the engine's own)

    with StopFlag() as sig:
        for i, (arm, s) in enumerate(jobs, 1):
            prefix = f"[{exp.id} {i}/{len(jobs)}]"
            log(f"{prefix} running {arm.label} (seed {s}) ...")
            rec = run_one(exp, arm, scale, s, out_dir, avail, overrides, log, f"{prefix} {arm.label} s{s}")
            records.append(rec)
            log(f"{prefix} {_line(rec)}")
            signum = sig.signal or _signal_of(rec)
            if signum is not None:
                name = signal.Signals(signum).name
                done = sum(r.ran for r in records)
                raise ExperimentInterrupted(
                    f"{exp.id} stopped by {name} after {done}/{len(jobs)} runs; finished runs are kept in {out_dir / 'runs'} "
                    f"(an interrupted one resumes from its checkpoint): run the same command again to continue.", signum)
    results = Results(exp, records, scale)
    if exp.probe:
        from .probes import run_probe

        run_probe(exp.probe, results, out_dir)
    outputs.write_all(exp, results, scale, n_seeds, out_dir, time.time() - t0)
    return out_dir
