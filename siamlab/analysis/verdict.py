"""Collapse and divergence verdicts of a run, from its metrics history (SPEC §2).

Divergence: the run's status is ``"diverged"``, or a ``train`` record holds a non-finite ``loss``
(NaN/±Inf; the run log stores them as the strings "nan"/"inf", a null is treated the same way).
Mirror SimSiam stops this way in ZHANG A.4.

Collapse (complete collapse, ZHANG §3.1: all Z close to the center o), decided on the median of the
last :data:`WINDOW` ``diag`` records (the live diagnostics on training batches) of

    std_scaled = √d · std(Z) < 0.1    or    m_r < 0.05.

Why these thresholds: for outputs spread isotropically on the sphere std_scaled ≈ 1 and m_r ≈ 1;
a collapsed output gives 0 for both (ZHANG Tables 1–3 report Std 0, m_r 0 for collapsed runs). The
lowest values ZHANG reports for runs that did *not* collapse are Std 0.0108 at d = 2048 (Table 1,
std_scaled ≈ 0.49) and Std 0.020, m_r 0.99 (Table 3, std_scaled ≈ 0.91); the thresholds sit an order
of magnitude below isotropic and ~5× below those values. m_r < 0.05 means the rms angle between Z_i
and o is below ~3° (rms m_r = √(1 − m_o²)). std_scaled also falls when the variance lives in few
dimensions, so the first test catches extreme dimensional collapse (fewer than ~d/100 live
dimensions) too. Without ``diag`` records the last ``eval`` record's ``std_scaled_projector`` /
``m_r_projector`` (clean features, :meth:`LiveDiagnostics.representation_metrics`) are used.
"""
from __future__ import annotations

import math
import statistics
from typing import Optional

STD_SCALED_MIN = 0.1
M_R_MIN = 0.05
WINDOW = 3
RULE = f"collapsed if median of the last {WINDOW} logs has sqrt(d)*std < {STD_SCALED_MIN} or m_r < {M_R_MIN}"


def as_float(v) -> Optional[float]:
    """A metrics value as float: numbers, or the strings "nan"/"inf"/"-inf" of the run log; None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _finite(v) -> Optional[float]:
    x = as_float(v)
    return x if x is not None and math.isfinite(x) else None


def diverged(history: list, status: str) -> bool:
    """True when the run diverged: status ``diverged`` or a non-finite (or null) training loss."""
    if status == "diverged":
        return True
    for rec in history:
        if rec.get("kind") == "train" and "loss" in rec:
            x = as_float(rec["loss"])
            if x is None or not math.isfinite(x):
                return True
    return False


def _window(history: list, kind: str, key: str) -> list:
    vals = [_finite(r.get(key)) for r in history if r.get("kind") == kind and not r.get("random_init")]
    return [v for v in vals if v is not None][-WINDOW:]


def collapse_evidence(history: list) -> dict:
    """The values the collapse rule reads: ``std_scaled``, ``m_r`` (medians) and their ``source``."""
    for kind, std_key, mr_key in (("diag", "std_scaled", "m_r"), ("eval", "std_scaled_projector", "m_r_projector")):
        std, mr = _window(history, kind, std_key), _window(history, kind, mr_key)
        if std or mr:
            return {
                "std_scaled": statistics.median(std) if std else None,
                "m_r": statistics.median(mr) if mr else None,
                "source": kind,
            }
    return {"std_scaled": None, "m_r": None, "source": None}


def verdicts(history: list, status: str) -> dict:
    """Verdicts of one run: ``verdict`` ("diverged" | "collapsed" | "not collapsed" | "unknown"),
    ``diverged`` (bool), ``collapsed`` (bool, or None without data), the evidence and the ``rule``.

    A run that collapsed and then diverged reports verdict "diverged" with ``collapsed`` True."""
    ev = collapse_evidence(history)
    std, mr = ev["std_scaled"], ev["m_r"]
    collapsed = None
    if std is not None or mr is not None:
        collapsed = bool((std is not None and std < STD_SCALED_MIN) or (mr is not None and mr < M_R_MIN))
    div = diverged(history, status)
    if div:
        verdict = "diverged"
    elif collapsed is None:
        verdict = "unknown"
    else:
        verdict = "collapsed" if collapsed else "not collapsed"
    return {"verdict": verdict, "diverged": div, "collapsed": collapsed, "std_scaled": std, "m_r": mr,
            "evidence": ev["source"], "rule": RULE}
