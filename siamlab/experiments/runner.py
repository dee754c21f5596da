"""Run an experiment: every arm × seed through the public training API, then verdicts and outputs.

Layout of the experiment folder (default ``runs/reproduce/<id>-<scale>/``):
    runs/<arm>-s<seed>/   one training run each (config.yaml, metrics.jsonl, summary.json)
    results.json          everything the report and the README catalogue need
    results.csv, results.md, figures/*.png, report.html
A run whose folder already holds a ``summary.json`` for the identical config is reused, so an
interrupted ``reproduce`` continues where it stopped.
"""
from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from .. import config as config_mod
from ..errors import SiamlabError
from .measures import RunRecord
from .results import Results
from .scales import arm_config, methods_needed
from ..text import slug
from .spec import Experiment


def default_out(exp_id: str, scale: str) -> Path:
    return Path("runs") / "reproduce" / f"{exp_id}-{scale}"


def _read_history(run_dir: Path) -> list:
    from ..engine.runlog import read_metrics

    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


def _cached(run_dir: Path, cfg_text: str) -> Optional[dict]:
    summ, conf = run_dir / "summary.json", run_dir / "config.yaml"
    if summ.exists() and conf.exists() and conf.read_text() == cfg_text:
        try:
            return json.loads(summ.read_text())
        except json.JSONDecodeError:
            return None
    return None


def _sibling(out_dir: Path, cfg_text: str) -> Optional[Path]:
    """A finished run with the identical config in another experiment folder next to this one."""
    for conf in out_dir.parent.glob("*/runs/*/config.yaml"):
        if conf.parent.parent.parent == out_dir:
            continue
        if (conf.parent / "summary.json").exists() and conf.read_text() == cfg_text:
            return conf.parent
    return None


def apply_overrides(cfg, overrides: list) -> None:
    """``key=value`` strings (as ``siamlab train --set``) applied last, e.g. ``data.root=/data/cifar-100-python``."""
    config_mod.apply_overrides(cfg, overrides)


def run_one(exp: Experiment, arm, scale: str, seed: int, out_dir: Path, available: set, overrides: Optional[list] = None) -> RunRecord:
    """Train one arm with one seed; never raises for a user-level or run-level failure (it is recorded)."""
    from ..engine.trainer import train

    cfg_dict = arm_config(exp, arm, scale, seed)
    missing = [m for m in methods_needed(cfg_dict) if m not in available]
    if missing:
        return RunRecord(arm.label, seed, "not run", f"method {missing[0]} missing")
    run_dir = out_dir / "runs" / f"{slug(arm.label)}-s{seed}"
    try:
        cfg = config_mod.from_dict(cfg_dict)
        apply_overrides(cfg, overrides)
    except SiamlabError as err:
        return RunRecord(arm.label, seed, "error", f"config: {err}", str(run_dir))
    cfg_text = config_mod.dump(cfg)
    summary = _cached(run_dir, cfg_text)
    t0 = time.time()
    if summary is None:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        twin = _sibling(out_dir, cfg_text)
        if twin is not None:  # identical run already made for another experiment: copy it
            shutil.copytree(twin, run_dir)
            summary = _cached(run_dir, cfg_text)
    if summary is None:
        try:
            summary = train(cfg, run_dir=str(run_dir)).summary
        except SiamlabError as err:
            return RunRecord(arm.label, seed, "error", str(err), str(run_dir), time.time() - t0)
        except Exception as err:  # an engine/method bug must not hide the other arms' results
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            return RunRecord(arm.label, seed, "error", f"{type(err).__name__}: {err}", str(run_dir), time.time() - t0)
    seconds = float(summary.get("seconds", time.time() - t0))
    return RunRecord(arm.label, seed, summary.get("status", "completed"), summary.get("message", ""), str(run_dir),
                     seconds, summary, _read_history(run_dir))


def _line(rec: RunRecord) -> str:
    final = rec.summary.get("final") or {}
    knn = final.get("knn_backbone")
    parts = [f"{rec.label} seed {rec.seed}: {rec.status}"]
    if isinstance(knn, (int, float)):
        parts.append(f"kNN {knn:.1f}%")
    if rec.message:
        parts.append(rec.message)
    parts.append(f"{rec.seconds:.0f}s")
    return " | ".join(parts)


def run_experiment(exp: Experiment, scale: str = "smoke", seeds: Optional[int] = None, out: Optional[str] = None,
                   log: Callable[[str], None] = print, overrides: Optional[list] = None) -> Path:
    """Run (or reuse) every arm × seed, then write results, figures and the report. Returns the folder.

    ``overrides``: ``key=value`` strings applied to every run last (e.g. ``data.root=...`` at paper scale).
    """
    from ..methods import available as available_methods
    from . import outputs

    out_dir = Path(out) if out else default_out(exp.id, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_seeds = int(seeds or exp.seeds.get(scale, 1))
    apply_overrides(config_mod.RunConfig(), overrides)  # a bad key is a user error: fail before any run
    avail = set(available_methods())
    jobs = [(arm, s) for arm in exp.arms_for(scale) for s in range(n_seeds)]
    t0 = time.time()
    records = []
    for i, (arm, s) in enumerate(jobs, 1):
        log(f"[{exp.id} {i}/{len(jobs)}] running {arm.label} (seed {s}) ...")
        rec = run_one(exp, arm, scale, s, out_dir, avail, overrides)
        records.append(rec)
        log(f"[{exp.id} {i}/{len(jobs)}] {_line(rec)}")
    results = Results(exp, records, scale)
    if exp.probe:
        from .probes import run_probe

        run_probe(exp.probe, results, out_dir)
    outputs.write_all(exp, results, scale, n_seeds, out_dir, time.time() - t0)
    return out_dir
