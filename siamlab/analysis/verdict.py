"""Collapse and divergence verdicts of a run, from its metrics history (SPEC §2).

Three kinds of collapse are seen, each on the records where it is meaningful:

1. **Complete collapse** (ZHANG §3.1: all Z close to the center o), on the median of the last
   :data:`WINDOW` ``diag`` records (live diagnostics of the training batch) of view 0's projector output:

       √d·std(Z) < 0.1    or    m_r(Z) < 0.05.

   For outputs spread isotropically on the sphere √d·std ≈ 1 and m_r ≈ 1; a constant output gives 0 for
   both (ZHANG Tables 1–3 report Std 0, m_o 1, m_r 0 for collapsed runs). The lowest values ZHANG reports
   for runs that did *not* collapse are Std 0.0108 at d = 2048 (Table 1, √d·std ≈ 0.49) and Std 0.020,
   m_r 0.99 (Table 3, √d·std ≈ 0.91): the thresholds sit an order of magnitude below isotropic and ~5×
   below those values. m_r < 0.05 means the rms angle between Z_i and o is below ~3°.

2. **Collapse of the tensor the loss acts on.** When the method's loss acts on the predictor output P
   (the method's gradient frame has its anchor on P — SimSiam, BYOL, the gradient-surgery and
   Symmetric-Predictor variants; the live diagnostics log ``loss_on_p`` = 1), the same two thresholds are
   applied to P (``p_std_scaled``, ``p_m_r``). A constant P leaves the encoder without a learning signal
   while z can stay spread at its initial state: in ZHANG Table 4's arm without o_e and r_e the smoke runs of
   issue 11 saw P's √d·std fall below 0.1 with m_o(P) near 1 while z, under its final BN, stayed spread. ZHANG
   counts that arm as collapsed.

3. **Dimensional collapse** (the outputs occupy a low-dimensional subspace; ZHANG Conjecture 2: "when all
   the dimensions have the same values, equivalent to having a single dimension, which already collapses
   by itself"), on the last evaluation of *clean* projector features of the test split (un-augmented, BN in
   eval mode — the live batch of a few hundred samples would cap the rank at the batch size). The
   effective rank (Roy & Vetterli: exp of the entropy of the normalized singular values; 1 for rank one,
   ≈ d for isotropic outputs) must reach

       r_min = max(2, min(K − 1, d / 2)),   K = number of classes, d = output dimension.

   Why K − 1: K class means at equal mutual angles (the configuration the NCM classifier and GEN's
   Theorems 2–3 favour) span K − 1 dimensions, and GEN Table 1 shows accuracy holding for d ≥ 2K and
   dropping fast once d < K — a representation that uses fewer directions than K − 1 has lost the room the
   classes need. Where the output is narrower than that (d < 2(K − 1), GEN's small-d arms), it is judged
   against half of its own dimensions instead; 2 is the floor (one direction is Conjecture 2's single
   dimension). Without K (no labels) r_min = 2. ‖Σ − I‖²/d of the same features is reported beside it.

The K − 1 threshold describes a run (``siamlab analyze``, ``diagnose``, the Monitor); it decides no claim of the
experiment catalogue. Claims read complete collapse through :func:`collapse_margin`, and dimensional collapse only
where a claim is about dimensions or an arm's spread cannot fail by construction — and there against
:data:`ERANK_FLOOR`, Conjecture 2's single dimension (``siamlab.experiments.rules``, ISSUE 19.3).

**Collapse margin** (:func:`collapse_margin`): how far a run is from complete collapse, in decades —
log10 of the smallest of √d·std(Z)/0.1 and m_r(Z)/0.05 (and the same on P where the loss acts on P), clipped to
±:data:`MARGIN_CLIP`; a diverged run counts as −MARGIN_CLIP (ZHANG A.4 counts Mirror's NaN run as collapsed).
Negative means collapsed; a spread run sits near +1 (√d·std ≈ 0.9), a constant output at −2. The catalogue's
claims test its 95 % interval over seeds against 0, so a run that hovers at the threshold (√d·std 0.09–0.12)
leaves the claim undecidable instead of flipping it.

A run that collapsed completely (or on P) has verdict "collapsed" / "collapsed (predictor output P)";
one that did not but lost dimensions has "dimensional collapse"; both can be read separately from
``complete``, ``loss_tensor`` and ``dimensional``. ``collapsed`` is True for complete or loss-tensor
collapse (what ZHANG's tables count as collapse); dimensional collapse is reported apart.

Known limit: all three read *directions* (std and m_r of l2-normalized Z, the spectrum's shape), not the
scale of the un-normalized output. A projector whose outputs shrink towards zero while their directions
stay spread (BRIDGE §4.2's "the projector always outputs zero", seen in bridge-t3's "Cov = 1" cell, whose mean
‖z‖ fell by an order of magnitude while its effective rank stayed high) is not counted as collapsed; its
accuracy shows it. A scale rule cannot simply be added: losses that normalize z (SimSiam, BYOL, InfoNCE) leave
the output scale free, and weight decay shrinks it harmlessly.

Divergence: the run's status is ``"diverged"``, or a ``train`` record holds a non-finite ``loss``
(NaN/±Inf; the run log stores them as the strings "nan"/"inf", a null is treated the same way).
Mirror SimSiam stops this way in ZHANG A.4.
"""
from __future__ import annotations

import math
import statistics
from typing import Optional

STD_SCALED_MIN = 0.1
M_R_MIN = 0.05
ERANK_FLOOR = 2.0
MARGIN_CLIP = 2.0
WINDOW = 3
RULE = (f"collapsed if the median of the last {WINDOW} diag logs has sqrt(d)*std < {STD_SCALED_MIN} or m_r < {M_R_MIN} "
        f"on Z, or on P when the loss acts on P; dimensional collapse if the effective rank of clean projector "
        f"features at the last evaluation < max({ERANK_FLOOR:g}, min(K - 1, d/2))")


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


def _median(history: list, kind: str, key: str) -> Optional[float]:
    vals = _window(history, kind, key)
    return statistics.median(vals) if vals else None


def _below(std: Optional[float], mr: Optional[float]) -> Optional[bool]:
    if std is None and mr is None:
        return None
    return bool((std is not None and std < STD_SCALED_MIN) or (mr is not None and mr < M_R_MIN))


def erank_threshold(dim: Optional[float], classes: Optional[float]) -> float:
    """r_min = max(2, min(K − 1, d/2)) (module docstring); 2 without K or d."""
    if not dim or not classes:
        return ERANK_FLOOR
    return max(ERANK_FLOOR, min(classes - 1.0, dim / 2.0))


def collapse_evidence(history: list) -> dict:
    """The values the rules read: Z (and P) from the last diag records — or, without diag records, the last
    eval record's clean projector features — and the dimensional evidence from the last evaluation."""
    ev = {"std_scaled": None, "m_r": None, "source": None, "p_std_scaled": None, "p_m_r": None, "loss_on_p": False}
    for kind, std_key, mr_key in (("diag", "std_scaled", "m_r"), ("eval", "std_scaled_projector", "m_r_projector")):
        std, mr = _median(history, kind, std_key), _median(history, kind, mr_key)
        if std is not None or mr is not None:
            ev.update(std_scaled=std, m_r=mr, source=kind)
            break
    if (_median(history, "diag", "loss_on_p") or 0.0) > 0.5:
        ev.update(loss_on_p=True, p_std_scaled=_median(history, "diag", "p_std_scaled"), p_m_r=_median(history, "diag", "p_m_r"))
    evals = [r for r in history if r.get("kind") == "eval" and not r.get("random_init")]
    last = evals[-1] if evals else {}
    ev.update(erank=_finite(last.get("erank_projector")), dim=_finite(last.get("dim_projector")),
              classes=_finite(last.get("num_classes")), sigma_i=_finite(last.get("sigma_i_projector")))
    return ev


def verdicts(history: list, status: str) -> dict:
    """Verdicts of one run (module docstring): ``verdict`` ("diverged" | "collapsed" | "collapsed (predictor
    output P)" | "dimensional collapse" | "not collapsed" | "unknown"), ``diverged``, ``collapsed`` (complete
    or loss-tensor collapse; None without data), ``complete``, ``loss_tensor``, ``dimensional`` (each bool, or
    None where not measured), the evidence and the ``rule``.

    A run that collapsed and then diverged reports verdict "diverged" with ``collapsed`` True."""
    ev = collapse_evidence(history)
    complete = _below(ev["std_scaled"], ev["m_r"])
    loss_tensor = _below(ev["p_std_scaled"], ev["p_m_r"]) if ev["loss_on_p"] else None
    r_min = erank_threshold(ev["dim"], ev["classes"])
    dimensional = None if ev["erank"] is None else bool(ev["erank"] < r_min)
    known = [v for v in (complete, loss_tensor) if v is not None]
    collapsed = any(known) if known else None
    div = diverged(history, status)
    if div:
        verdict = "diverged"
    elif complete:
        verdict = "collapsed"
    elif loss_tensor:
        verdict = "collapsed (predictor output P)"
    elif dimensional:
        verdict = "dimensional collapse"
    elif collapsed is None and dimensional is None:
        verdict = "unknown"
    else:
        verdict = "not collapsed"
    return {"verdict": verdict, "diverged": div, "collapsed": collapsed, "complete": complete, "loss_tensor": loss_tensor,
            "dimensional": dimensional, "std_scaled": ev["std_scaled"], "m_r": ev["m_r"], "p_std_scaled": ev["p_std_scaled"],
            "p_m_r": ev["p_m_r"], "erank": ev["erank"], "erank_min": r_min if ev["erank"] is not None else None,
            "dim": ev["dim"], "classes": ev["classes"], "sigma_i": ev["sigma_i"], "evidence": ev["source"], "rule": RULE}


def collapse_margin(v: dict) -> Optional[float]:
    """Decades between a run's verdict dict ``v`` and complete collapse (module docstring); None without data."""
    if v.get("diverged") or v.get("verdict") == "diverged":
        return -MARGIN_CLIP
    ratios = [v.get("std_scaled"), v.get("m_r")]
    ratios = [x / t for x, t in zip(ratios, (STD_SCALED_MIN, M_R_MIN)) if x is not None]
    if v.get("loss_tensor") is not None:
        ratios += [x / t for x, t in zip((v.get("p_std_scaled"), v.get("p_m_r")), (STD_SCALED_MIN, M_R_MIN)) if x is not None]
    if not ratios:
        return None
    low = min(ratios)
    return -MARGIN_CLIP if low <= 0 else max(-MARGIN_CLIP, min(MARGIN_CLIP, math.log10(low)))


def explain(v: dict) -> str:
    """One line with the evidence behind a verdict dict (for `siamlab analyze` and reports)."""
    parts = []
    for key, name in (("std_scaled", "√d·std(Z)"), ("m_r", "m_r(Z)"), ("p_std_scaled", "√d·std(P)"), ("p_m_r", "m_r(P)")):
        if v.get(key) is not None:
            parts.append(f"{name}={v[key]:.3g}")
    if v.get("erank") is not None:
        parts.append(f"effective rank={v['erank']:.3g} (needs ≥ {v['erank_min']:.3g}"
                     + (f", d={v['dim']:.0f}" if v.get("dim") else "") + (f", K={v['classes']:.0f}" if v.get("classes") else "") + ")")
    if v.get("sigma_i") is not None:
        parts.append(f"‖Σ−I‖²/d={v['sigma_i']:.3g}")
    return ", ".join(parts)
