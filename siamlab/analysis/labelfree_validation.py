"""How well each label-free measure tracks what it is meant to predict: statistics over evaluation rows of many runs.

A *row* is one evaluation of one run (random init included): a dict with the run's id (``run``), its experiment,
``method`` and ``family`` (:func:`family`), ``dataset``, ``random_init``, the kNN top-1 of backbone and projector
features (``knn_backbone``, ``knn_projector``), the six label-free values (``rankme_<f>``, ``lidar_<f>``,
``alpha_req_<f>``), the collapse verdict of the run up to that evaluation (``verdict``, ``collapsed``: complete or
loss-tensor collapse or divergence; ``dimensional``) and the kNN gain over the run's random-init network
(``knn_gain_<f>``). :func:`validate` computes, for each measure (:data:`MEASURES`; α-ReQ as α and as |α − 1|):

* **Spearman ρ with kNN top-1** (:func:`scipy.stats.spearmanr`) of the same features (backbone measures against
  backbone kNN, projector against projector) — over all rows, within each experiment (the median over experiments
  with at least :data:`MIN_ROWS` rows: how well the measure ranks the runs of one setting, where data, network and
  output dimension are fixed) and per method family;
* **AUROC for "not collapsed"** (:func:`sklearn.metrics.roc_auc_score`): the chance that a row whose run has not
  collapsed (complete, P or divergence) scores higher than one that has; 0.5 is no information, below 0.5 the
  measure is higher on collapsed rows;
* 95 % intervals by a **cluster bootstrap over runs** (:data:`BOOT` resamples of whole runs with replacement, seeded):
  the rows of one run are not independent, so resampling rows would overstate the precision (Fisher's interval
  assumes independent pairs too);
* **checkpoint choice** (what ``checkpoints/best_unsupervised.pt`` does): per run with two or more evaluations after
  training started, the kNN points lost by keeping the evaluation the measure's selection score ranks first
  (:func:`siamlab.analysis.labelfree.selection_score`: RankMe and LiDAR highest, α-ReQ closest to 1) instead of the
  best one; beside it, the points lost by keeping the last evaluation;
* **where it misleads**: collapsed rows whose score is above the median score of the non-collapsed trained rows
  ("high while collapsed", split by verdict: complete, P, dimensional), and trained rows in the top quarter of scores
  whose network gained nothing over its random init ("high, yet kNN at random init").

**Recommendation** (:func:`recommend`): among the selection scores (RankMe, LiDAR, −|α − 1| of each feature), the one
whose within-experiment median ρ with kNN is highest, the pooled ρ's lower 95 % bound breaking ties within 0.05 —
ranking the checkpoints and runs of one setting is what the measure is used for.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .labelfree import selection_score

FEATURES = ("backbone", "projector")
# name -> (row key template, transform of the raw value)
KINDS = {"RankMe": ("rankme_{f}", None), "LiDAR": ("lidar_{f}", None), "α-ReQ α": ("alpha_req_{f}", None),
         "α-ReQ |α−1|": ("alpha_req_{f}", "abs1")}
MEASURES = [(f"{name} ({f})", tpl.format(f=f), f, tf) for f in FEATURES for name, (tpl, tf) in KINDS.items()]
SELECTABLE = tuple(f"{m}_{f}" for f in FEATURES for m in ("rankme", "lidar", "alpha_req"))
BOOT = 1000
MIN_ROWS = 6
BIG = 1e12  # α = inf (one or two nonzero eigenvalues) ranks above every finite α

# Method -> family (README "Label-free quality"): how the method keeps its output from collapsing.
FAMILIES = {
    "contrastive": ("simclr", "moco", "infonce_surgery", "triplet", "triplet_surgery"),
    "predictor": ("simsiam", "byol", "directpred", "simsiam_surgery", "inverse", "mirror", "sympred", "simsiam_nosg",
                  "bridge"),
    "no predictor, no negatives": ("naive", "simsiam_nopred", "eoa", "conj_center", "conj_residual", "bn_mse"),
    "redundancy reduction": ("barlow", "vicreg", "wmse", "decorrelation"),
    "clustering / centering": ("dino", "swav", "center"),
}


def family(method: str) -> str:
    for name, methods in FAMILIES.items():
        if method in methods:
            return name
    return "other"


def _value(row: dict, key: str, tf: Optional[str]) -> Optional[float]:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    v = float(v)
    if tf == "abs1":
        v = abs(v - 1.0)
    return min(v, BIG)


def pairs(rows: list, key: str, tf: Optional[str], target: str) -> tuple:
    """(x, y, run ids) of the rows with a value of both."""
    xs, ys, runs = [], [], []
    for r in rows:
        x, y = _value(r, key, tf), r.get(target)
        if x is not None and isinstance(y, (int, float)) and math.isfinite(y):
            xs.append(x)
            ys.append(float(y))
            runs.append(r["run"])
    return np.array(xs), np.array(ys), runs


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _auroc(score, label) -> float:
    from sklearn.metrics import roc_auc_score

    if label.all() or not label.any():
        return math.nan
    return float(roc_auc_score(label, score))


def cluster_bootstrap(stat, x, y, runs: list, reps: int = BOOT, seed: int = 0) -> tuple:
    """(value, low, high): ``stat(x, y)`` and its 95 % percentile interval over ``reps`` resamples of whole runs
    (clusters of rows) with replacement; NaN bounds when too few resamples give a value."""
    value = stat(x, y)
    ids = sorted(set(runs))
    if len(ids) < 3 or math.isnan(value):
        return value, math.nan, math.nan
    index = {r: i for i, r in enumerate(ids)}
    groups = [[] for _ in ids]
    for k, r in enumerate(runs):
        groups[index[r]].append(k)
    groups = [np.array(g) for g in groups]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        pick = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        v = stat(x[pick], y[pick])
        if not math.isnan(v):
            vals.append(v)
    if len(vals) < reps // 2:
        return value, math.nan, math.nan
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return value, float(lo), float(hi)


def within_experiments(rows: list, key: str, tf: Optional[str], target: str) -> dict:
    """Spearman ρ within each experiment (at least :data:`MIN_ROWS` rows): the median, the quartiles and how many."""
    by_exp: dict = {}
    for r in rows:
        by_exp.setdefault(r.get("experiment", ""), []).append(r)
    rhos = {}
    for exp, group in sorted(by_exp.items()):
        x, y, _ = pairs(group, key, tf, target)
        if len(x) >= MIN_ROWS:
            rho = _spearman(x, y)
            if not math.isnan(rho):
                rhos[exp] = rho
    vals = list(rhos.values())
    if not vals:
        return {"median": None, "q1": None, "q3": None, "experiments": 0, "positive": 0, "by_experiment": {}}
    q1, med, q3 = (float(v) for v in np.percentile(vals, [25, 50, 75]))
    return {"median": med, "q1": q1, "q3": q3, "experiments": len(vals), "positive": sum(v > 0 for v in vals),
            "by_experiment": rhos}


def checkpoint_loss(rows: list, key: str, feature: str) -> dict:
    """kNN points lost per run by keeping the evaluation ``key``'s selection score ranks first (the first of equal
    scores, as the engine keeps it), and by keeping the last one, against the run's best evaluation."""
    target = f"knn_{feature}"
    by_run: dict = {}
    for r in rows:
        if not r.get("random_init") and isinstance(r.get(target), (int, float)):
            by_run.setdefault(r["run"], []).append(r)
    chosen, last = [], []
    for evals in by_run.values():
        scored = [(selection_score(r, key), r[target]) for r in evals]
        scored = [(s, k) for s, k in scored if s is not None]
        if len(evals) < 2 or len(scored) < 2:
            continue
        best = max(r[target] for r in evals)
        top = scored[0]
        for s, k in scored[1:]:
            if s > top[0]:
                top = (s, k)
        chosen.append(best - top[1])
        last.append(best - evals[-1][target])
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    return {"runs": len(chosen), "lost": mean(chosen), "lost_last": mean(last)}


def misleading(rows: list, key: str, feature: str, examples: int = 3) -> dict:
    """Where the measure's selection score misleads (module docstring), with a few example rows."""
    scored = [(selection_score(r, key), r) for r in rows if not r.get("random_init")]
    scored = [(s, r) for s, r in scored if s is not None]
    healthy = [s for s, r in scored if r.get("collapsed") is False and not r.get("dimensional")]
    out = {"healthy_median": float(np.median(healthy)) if healthy else None}
    kinds = {"complete": lambda r: r.get("verdict") in ("collapsed", "diverged"),
             "P": lambda r: r.get("verdict") == "collapsed (predictor output P)",
             "dimensional": lambda r: r.get("verdict") == "dimensional collapse"}
    for name, test in kinds.items():
        rows_k = [(s, r) for s, r in scored if test(r)]
        high = [(s, r) for s, r in rows_k if healthy and s > out["healthy_median"]]
        out[f"high_while_{name}"] = {"rows": len(rows_k), "high": len(high), "examples": [_example(r, key) for _, r in high[:examples]]}
    gain_key = f"knn_gain_{feature}"
    if scored:
        q3 = float(np.percentile([s for s, _ in scored], 75))
        top = [(s, r) for s, r in scored if s >= q3 and isinstance(r.get(gain_key), (int, float))]
        flat = [(s, r) for s, r in top if r[gain_key] <= 0]
        out["high_no_gain"] = {"rows": len(top), "no_gain": len(flat), "examples": [_example(r, key) for _, r in flat[:examples]]}
    return out


def _example(r: dict, key: str) -> str:
    return (f"{r.get('experiment', '')}/{r.get('arm', r['run'])} epoch {r.get('epoch', 0):g}: {key} {r.get(key):.3g}, "
            f"{r.get('verdict')}, kNN gain {r.get('knn_gain_' + key.rsplit('_', 1)[-1], float('nan')):+.2f}")


def measure_stats(rows: list, name: str, key: str, feature: str, tf: Optional[str], reps: int = BOOT) -> dict:
    """Every statistic of one measure (module docstring)."""
    target = f"knn_{feature}"
    x, y, runs = pairs(rows, key, tf, target)
    rho = cluster_bootstrap(_spearman, x, y, runs, reps)
    verdict_rows = [r for r in rows if isinstance(r.get("collapsed"), bool)]
    xs, lab, vruns = pairs([{**r, "_ok": float(not r["collapsed"])} for r in verdict_rows], key, tf, "_ok")
    auc = cluster_bootstrap(_auroc, xs, lab.astype(bool), vruns, reps)
    fams = {}
    for fam in sorted({r["family"] for r in rows}):
        fx, fy, fr = pairs([r for r in rows if r["family"] == fam], key, tf, target)
        fams[fam] = {"n": len(fx), "runs": len(set(fr)), "rho": cluster_bootstrap(_spearman, fx, fy, fr, reps)}
    out = {"name": name, "key": key, "feature": feature, "transform": tf, "n": len(x), "runs": len(set(runs)), "rho": rho,
           "auroc": auc, "auroc_n": (int(lab.sum()), int((~lab.astype(bool)).sum())),
           "within": within_experiments(rows, key, tf, target), "families": fams}
    if tf is None or key.startswith("alpha_req_"):
        selectable = (tf == "abs1") or not key.startswith("alpha_req_")
        if selectable:
            out["checkpoint"] = checkpoint_loss(rows, key, feature)
            out["misleading"] = misleading(rows, key, feature)
    return out


def recommend(stats: list) -> dict:
    """The measure that validates best (module docstring): highest within-experiment median ρ of its selection
    score, ties within 0.05 broken by the pooled ρ's lower bound."""
    cands = [s for s in stats if "checkpoint" in s and s["within"]["median"] is not None]
    if not cands:
        return {"key": None, "why": "no measure has enough rows within an experiment"}
    sign = lambda s: -1.0 if s["transform"] == "abs1" else 1.0  # noqa: E731  (|α − 1|: lower is better)
    best = max(sign(s) * s["within"]["median"] for s in cands)
    close = [s for s in cands if sign(s) * s["within"]["median"] >= best - 0.05]
    lower = lambda s: sign(s) * (s["rho"][1] if sign(s) > 0 else s["rho"][2])  # noqa: E731
    pick = max(close, key=lambda s: (lower(s) if math.isfinite(lower(s)) else -math.inf))
    return {"key": pick["key"], "name": pick["name"],
            "why": f"highest median Spearman ρ with kNN within an experiment ({sign(pick) * pick['within']['median']:+.2f}"
                   f" over {pick['within']['experiments']} experiments; pooled ρ {sign(pick) * pick['rho'][0]:+.2f})"}


def validate(rows: list, reps: int = BOOT) -> dict:
    """Every measure's statistics over ``rows`` and the recommendation."""
    stats = [measure_stats(rows, name, key, f, tf, reps) for name, key, f, tf in MEASURES]
    return {"rows": len(rows), "runs": len({r["run"] for r in rows}), "experiments": len({r.get("experiment") for r in rows}),
            "families": sorted({r["family"] for r in rows}), "measures": stats, "recommendation": recommend(stats),
            "bootstrap": reps}
