"""``siamlab atlas``: a collapse atlas — a grid over one or two knobs of a method, one run per cell and seed, and
where in that grid the method collapses.

A knob is any field ``--set`` names (``optim.weight_decay``, ``model.proj_out``, a method knob such as
``method.momentum``) with the values it takes, written ``KEY=V1,V2,...``. Each cell of the grid is one arm of an
:class:`~.spec.Experiment` (the method's scale preset of :mod:`.scales`, then the atlas's base settings, then the
cell's two values, then ``--set``), made by the machinery ``reproduce`` uses (:func:`.runner.make_runs`): a finished
run of the same config is reused (so a rerun continues where an interrupted one stopped, and shares cells with an
atlas or experiment folder next to it), an interrupted one resumes, ``--jobs N`` makes N at once with every number
the same, and SIGTERM stops every worker and keeps what finished.

The folder (default ``runs/atlas/<name>-<scale>/``) holds ``runs/<cell>-s<seed>/`` and what
:func:`siamlab.report.atlas.write_atlas` writes from :func:`payload`: ``atlas.json`` (every cell's numbers per seed
and their means), heatmaps in ``figures/`` and ``atlas.html``. A cell's verdict is the runs' collapse verdict
(:mod:`siamlab.analysis.verdict`: complete collapse of z, collapse of P where the loss acts on P, dimensional collapse,
divergence); with several seeds the most frequent one, the others counted beside it.

Named atlases (the shipped grids, each with the reason it was chosen and its reading) are in :mod:`.atlases`.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .. import config as config_mod
from ..errors import ConfigError, SiamlabError
from . import measures
from .runner import THREAD_NOTE, check_labels, make_runs, thread_counts
from .spec import Arm, Experiment, merge

# The label-free measure the atlas draws: the one the validation over the catalogue found to track kNN best
# (`siamlab labelfree-validate`, README "Label-free quality"), which is also eval.best_unsupervised's default.
# atlas.json and the page's table carry the others.
LABEL_FREE_SHOWN = (config_mod.EvalConfig().best_unsupervised,)
# End-of-run numbers of each run: name -> measure of :mod:`.measures` (final evaluation or the tail of the
# diagnostics), and the label-free values of the final evaluation.
RUN_MEASURES = {"knn": "knn", "knn_init": "knn_init", "knn_projector": "knn_proj", "erank": "erank",
                "collapse_margin": "collapse_margin", "std_scaled": "std", "m_r": "m_r", "p_std_scaled": "p_std",
                "center": "m_o", "eta": "eta", "lambda_entropy": "entropy"}
LABEL_FREE_KEYS = config_mod.LABEL_FREE_METRICS


@dataclass
class Knob:
    """One axis of the grid: a config key as ``--set`` names it and the values it takes (``texts``: as written)."""

    key: str
    values: list
    texts: list = field(default_factory=list)

    def __post_init__(self):
        self.texts = self.texts or [str(v) for v in self.values]

    @property
    def name(self) -> str:
        return self.key.split(".")[-1]

    def overrides(self, value) -> dict:
        """The nested config override setting this knob to ``value`` (method knobs live in ``method.params``)."""
        parts = self.key.split(".")
        if parts[0] == "method" and len(parts) == 2 and parts[1] not in ("name", "params", "decor_weight"):
            return {"method": {"params": {parts[1]: value}}}
        out = value
        for part in reversed(parts):
            out = {part: out}
        return out


@dataclass
class Atlas:
    """A grid over ``x`` (and ``y``) of ``method``; ``base``: nested overrides of every cell (over the scale preset),
    ``scale_overrides``: scale -> overrides after them. ``reason``: why this grid (written before its runs);
    ``reading``: where the edge lies and which mechanism explains it (written after them, from their numbers)."""

    name: str
    method: str
    x: Knob
    y: Optional[Knob] = None
    base: dict = field(default_factory=dict)
    scale_overrides: dict = field(default_factory=dict)
    seeds: int = 1
    data_kind: str = "image"
    title: str = ""
    reason: str = ""
    reading: str = ""


def _typed(text: str, key: str):
    """A knob value as written on the command line: YAML (``true``, ``mlp``, ``0.5``), numbers like ``1e-4`` too."""
    value = config_mod.parse_yaml(text, f"the value {text!r} of {key}")
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                continue
    return value


def parse_knob(text: str, flag: str) -> Knob:
    """``KEY=V1,V2,...`` -> :class:`Knob`; else one sentence naming the flag."""
    example = f"e.g. {flag} optim.weight_decay=0,1e-4,5e-4"
    key, sep, rest = str(text).partition("=")
    key = key.strip()
    texts = [t.strip() for t in rest.split(",")]
    if not sep or not key or not rest.strip():
        raise ConfigError(f"{flag} {text!r} is not of the form KEY=V1,V2,... ({example}).")
    if any(not t for t in texts):
        raise ConfigError(f"{flag} {text!r} has an empty value; separate the values by single commas ({example}).")
    if len(set(texts)) != len(texts):
        raise ConfigError(f"{flag} {text!r} lists a value twice; list each value once.")
    return Knob(key, [_typed(t, key) for t in texts], texts)


def cell_label(atlas: Atlas, i: int, j: Optional[int]) -> str:
    """``weight_decay=1e-4, lr=0.5``: the knobs' last names (full keys where the two share one) and values."""
    names = [atlas.x.name, atlas.y.name if atlas.y else ""]
    if names[0] == names[1]:
        names = [atlas.x.key, atlas.y.key]
    label = f"{names[0]}={atlas.x.texts[i]}"
    return label if j is None else f"{label}, {names[1]}={atlas.y.texts[j]}"


def cells(atlas: Atlas) -> list:
    """[(i, j, Arm)] over the grid, x fastest (j is None without a y knob)."""
    out = []
    for j in (range(len(atlas.y.values)) if atlas.y else [None]):
        for i, xv in enumerate(atlas.x.values):
            over = atlas.x.overrides(xv)
            if atlas.y:
                over = merge(over, atlas.y.overrides(atlas.y.values[j]))
            out.append((i, j, Arm(cell_label(atlas, i, j), over, x=xv if isinstance(xv, (int, float)) else None)))
    return out


def experiment(atlas: Atlas) -> Experiment:
    """The atlas as an experiment without claims: one arm per cell."""
    base = merge({"method": {"name": atlas.method}}, atlas.base)
    return Experiment(atlas.name, "atlas", atlas.title or atlas.name, "", [arm for _, _, arm in cells(atlas)], [], [],
                      base=base, scale_overrides=atlas.scale_overrides,
                      seeds={s: atlas.seeds for s in ("tiny", "smoke", "paper")}, data_kind=atlas.data_kind)


def check(atlas: Atlas, scale: str, overrides: Optional[list]) -> None:
    """Every cell's config is a valid run (the engine's own checks), before anything runs; one sentence naming the
    knob or the cell otherwise."""
    from ..engine.build import check_config
    from .scales import arm_config

    if atlas.y is not None and atlas.y.key == atlas.x.key:
        raise ConfigError(f"--x and --y both vary {atlas.x.key}; give the second axis another key.")
    exp = experiment(atlas)
    check_labels(exp, scale)
    for knob, flag in ((atlas.x, "--x"), (atlas.y, "--y")):
        if knob is not None:
            try:
                config_mod.set_field(config_mod.RunConfig(), knob.key, knob.values[0])
            except ConfigError as err:
                raise ConfigError(f"{flag} {knob.key}: {err}") from None
    for arm in exp.arms:
        try:
            cfg = config_mod.from_dict(arm_config(exp, arm, scale, 0))
            config_mod.apply_overrides(cfg, overrides)
            check_config(cfg)
        except SiamlabError as err:
            raise ConfigError(f"atlas cell {arm.label!r}: {err}") from None


def default_out(name: str, scale: str) -> Path:
    return Path("runs") / "atlas" / f"{name}-{scale}"


def run_numbers(rec) -> dict:
    """A run's end-of-run numbers (:data:`RUN_MEASURES`, the label-free values, the kNN gain over its random init)."""
    out = {name: measures.value(rec, m) for name, m in RUN_MEASURES.items()}
    out.update({k: measures.final_eval(rec, k) if rec.ran else None for k in LABEL_FREE_KEYS})
    out["knn_gain"] = None if out["knn"] is None or out["knn_init"] is None else out["knn"] - out["knn_init"]
    return out


def run_verdict(rec) -> str:
    if not rec.ran:
        return "not run" if rec.status == "not run" else rec.status
    return str(measures.run_verdict(rec).get("verdict") or "unknown")


def _mean(values: list) -> Optional[float]:
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    return sum(vals) / len(vals) if vals else None


def cell_entry(i: int, j: Optional[int], arm: Arm, runs: list) -> dict:
    """One cell of atlas.json: its knob values, each seed's run, the most frequent verdict and the mean numbers."""
    per_run = [{"seed": r.seed, "status": r.status, "message": r.message, "verdict": run_verdict(r), "run_dir": r.run_dir,
                "seconds": r.summary.get("seconds", r.seconds), "cpu_seconds": r.summary.get("cpu_seconds"),
                **run_numbers(r)} for r in runs]
    counts = Counter(r["verdict"] for r in per_run)
    keys = [k for k in per_run[0] if k not in ("seed", "status", "message", "verdict", "run_dir")] if per_run else []
    return {"i": i, "j": j, "label": arm.label, "verdict": counts.most_common(1)[0][0] if counts else "not run",
            "verdicts": dict(counts), "seeds": len(per_run), "runs": per_run,
            "mean": {k: _mean([r[k] for r in per_run]) for k in keys}}


def payload(atlas: Atlas, scale: str, seeds: int, records: dict, seconds: float, notes: str) -> dict:
    """atlas.json's contents (module docstring)."""
    entries = [cell_entry(i, j, arm, [records[(arm.label, s)] for s in range(seeds) if (arm.label, s) in records])
               for i, j, arm in cells(atlas)]
    cpu = [r.get("cpu_seconds") for c in entries for r in c["runs"]]
    return {
        "name": atlas.name, "title": atlas.title or atlas.name, "method": atlas.method, "scale": scale, "seeds": seeds,
        "x": {"key": atlas.x.key, "values": atlas.x.values, "texts": atlas.x.texts},
        "y": None if atlas.y is None else {"key": atlas.y.key, "values": atlas.y.values, "texts": atlas.y.texts},
        "base": atlas.base, "scale_overrides": atlas.scale_overrides.get(scale, {}), "reason": atlas.reason,
        "reading": atlas.reading if scale == "smoke" else "", "notes": notes, "label_free_shown": list(LABEL_FREE_SHOWN),
        "seconds": round(seconds, 1), "run_seconds": round(sum(float(r.get("seconds") or 0) for c in entries for r in c["runs"]), 1),
        "cpu_seconds": round(sum(float(c or 0) for c in cpu), 1) if any(c is not None for c in cpu) else None,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "cells": entries,
    }


def run_atlas(atlas: Atlas, scale: str = "smoke", seeds: Optional[int] = None, out: Optional[str] = None,
              log: Callable[[str], None] = print, overrides: Optional[list] = None, jobs: int = 1) -> Path:
    """Make (or reuse) every cell × seed, then write atlas.json, the heatmaps and atlas.html; returns the folder.
    Raises :class:`.runner.ExperimentInterrupted` when a signal stopped it (finished runs stay on disk)."""
    from ..report.atlas import write_atlas

    config_mod.apply_overrides(config_mod.RunConfig(), overrides)  # a bad --set key fails before any run
    check(atlas, scale, overrides)
    n = int(seeds or atlas.seeds)
    exp = experiment(atlas)
    out_dir = Path(out) if out else default_out(atlas.name, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    records = make_runs(exp, scale, out_dir, [(a, s) for a in exp.arms for s in range(n)], overrides, jobs, log)
    notes = THREAD_NOTE if thread_counts(exp, scale, overrides) == {1} else ""
    if scale == "tiny":
        notes = f"Tiny scale checks plumbing only: its verdicts say nothing about the method. {notes}".strip()
    write_atlas(payload(atlas, scale, n, records, time.time() - t0, notes), out_dir)
    return out_dir
