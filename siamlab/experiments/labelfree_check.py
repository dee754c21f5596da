"""``siamlab labelfree-validate DIR...``: the label-free measures against kNN and the collapse verdict over every
evaluation of every run in the given folders (a catalogue folder, experiment folders, atlas folders or run folders).

Every ``metrics.jsonl`` under the folders is a run (a copy of a run made for another experiment — the same file,
byte for byte — counts once). Each ``eval`` row with a kNN value is a row of :mod:`siamlab.analysis.labelfree_validation`
(random-init rows included), with

* the run's method (``summary.json``; a run that switches methods (phases) takes its first) and its family;
* its experiment: the folder above ``runs/`` (``zhang-t2-smoke``), else the run folder's parent;
* the collapse verdict of the run *up to that evaluation*: :func:`siamlab.analysis.verdict.verdicts` of the rows
  logged until then (the last diagnostics of the training batch and this evaluation's clean features); a random-init
  row has no training records, so its verdict reads that evaluation's clean projector features alone (complete and
  dimensional collapse; P is not assessed);
* the kNN gain over the run's own random-init evaluation.

Writes ``validation.json`` (every statistic, the rows), ``validation.md`` (the tables the README shows) and
``scatter.png`` (each measure against kNN, coloured by verdict) into ``--out`` (default ``runs/labelfree-validation``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError
from .runs import read_history, read_summary

MEASURE_KEYS = tuple(f"{m}_{f}" for m in ("rankme", "lidar", "alpha_req") for f in ("backbone", "projector"))


def run_folders(paths: list) -> list:
    """Every run folder (one holding metrics.jsonl) under ``paths``, duplicates (identical metrics) dropped."""
    seen, out = set(), []
    for p in paths:
        root = Path(p)
        if not root.exists():
            raise ConfigError(f"{str(root)!r} does not exist; pass catalogue, experiment, atlas or run folders.")
        found = [root / "metrics.jsonl"] if (root / "metrics.jsonl").is_file() else sorted(root.rglob("metrics.jsonl"))
        for f in found:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                out.append(f.parent)
    return out


def _experiment(run_dir: Path) -> str:
    return run_dir.parent.parent.name if run_dir.parent.name == "runs" else run_dir.parent.name


def _method(run_dir: Path, summary: dict) -> str:
    from .cache import load_config

    cfg = load_config(run_dir / "config.yaml") or {}
    phases = cfg.get("phases") or []
    if phases and isinstance(phases[0], dict):
        return str((phases[0].get("method") or {}).get("name", summary.get("method", "")))
    return str(summary.get("method") or (cfg.get("method") or {}).get("name", ""))


def run_rows(run_dir: Path) -> list:
    """The rows of one run (module docstring); [] for a run without evaluations with kNN."""
    from ..analysis.labelfree_validation import family
    from ..analysis.verdict import verdicts

    history = read_history(run_dir)
    summary = read_summary(run_dir) or {}
    method = _method(run_dir, summary)
    init = next((r for r in history if r.get("kind") == "eval" and r.get("random_init")), {})
    rows = []
    for k, rec in enumerate(history):
        if rec.get("kind") != "eval" or not any(isinstance(rec.get(f"knn_{f}"), (int, float)) for f in ("backbone", "projector")):
            continue
        if rec.get("random_init"):
            v = verdicts([{**rec, "random_init": False}], "completed")
        else:
            v = verdicts(history[: k + 1], "completed")
        row = {"run": str(run_dir), "arm": run_dir.name, "experiment": _experiment(run_dir), "method": method,
               "family": family(method), "dataset": summary.get("dataset", ""), "epoch": float(rec.get("epoch") or 0),
               "random_init": bool(rec.get("random_init")), "verdict": v["verdict"], "dimensional": v["dimensional"],
               "collapsed": None if v["collapsed"] is None and not v["diverged"] else bool(v["collapsed"] or v["diverged"])}
        for f in ("backbone", "projector"):
            knn, base = rec.get(f"knn_{f}"), init.get(f"knn_{f}")
            row[f"knn_{f}"] = knn
            row[f"knn_gain_{f}"] = knn - base if isinstance(knn, (int, float)) and isinstance(base, (int, float)) else None
        row.update({key: rec[key] for key in MEASURE_KEYS if isinstance(rec.get(key), (int, float))})
        rows.append(row)
    return rows


def collect(paths: list, log: Callable[[str], None] = print) -> list:
    folders = run_folders(paths)
    rows = []
    for i, d in enumerate(folders, 1):
        rows += run_rows(d)
        if i % 100 == 0:
            log(f"read {i}/{len(folders)} runs ({len(rows)} evaluation rows)")
    if not rows:
        raise ConfigError(f"no evaluation row with kNN under {', '.join(map(str, paths))}; pass folders holding runs "
                          "(runs/*/metrics.jsonl) that evaluated kNN.")
    return rows


def validate_folders(paths: list, out: Optional[str] = None, log: Callable[[str], None] = print, reps: Optional[int] = None) -> Path:
    """Read, validate, and write the outputs (module docstring); returns the output folder."""
    from ..analysis.labelfree_validation import BOOT, validate
    from ..report.labelfree import write_validation

    rows = collect(paths, log)
    log(f"{len(rows)} evaluation rows of {len({r['run'] for r in rows})} runs; bootstrapping intervals ...")
    result = validate(rows, reps or BOOT)
    result["sources"] = [str(p) for p in paths]
    folder = Path(out) if out else Path("runs") / "labelfree-validation"
    write_validation(result, rows, folder)
    return folder
