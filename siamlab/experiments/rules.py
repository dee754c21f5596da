"""Verdict rules: small functions of :class:`~siamlab.experiments.results.Results` → :class:`~.stats.Verdict`.

Every rule names one quantity with one value per seed — a paired difference of two arms, a difference of two
measures within a run, or one arm's value — and decides it with its 95 % interval over seeds against the
claim's threshold (:mod:`.stats`): held when the interval clears the threshold on the claimed side, failed
when it clears the opposite side, undecidable otherwise (and with one seed). Accuracy comparisons pass the
random-init gate first (:mod:`.gates`). A Verdict's state is ``True`` (held), ``False`` (failed), ``None``
(not run: an arm or a diagnostic is missing) or :data:`~.stats.UNDECIDABLE`; its explanation states the
quantity, its interval, the seeds and the rule, and an undecidable one says whether more seeds could decide.

Rules are fixed when the experiment is written, from the paper's wording, before any run; a result that misses
a threshold is reported as "not reproduced", never re-tuned. The claims that use them quote the paper.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from scipy import stats as sps

from ..analysis.verdict import ERANK_FLOOR, M_R_MIN, STD_SCALED_MIN
from .gates import (accuracy_gated, beats_random_init, by_seed, cap_of, paired, paper_difference, paper_value,
                    per_run)
from .stats import UNDECIDABLE, Verdict, all_of, seed_test

__all__ = ["Verdict", "UNDECIDABLE", "collapses", "trains", "greater", "close", "slightly_below", "at_least_best_of",
           "not_below_min_of", "compare", "within", "changes", "trend", "argmax_among", "each_greater", "ordered",
           "spearman", "check_arm", "check_pair", "spread_by_construction", "not_collapsed"]

COLLAPSE_QUANTITY = (f"collapse margin (decades: log10 of min(√d·std/{STD_SCALED_MIN:g}, m_r/{M_R_MIN:g}) on Z, "
                     "and on P where the loss acts on P)")


def check_arm(res, label: str, measure: str, side: str, threshold: float, upper: Optional[float] = None,
                  quantity: str = "") -> Verdict:
    """One arm's end-of-run ``measure`` over its seeds against a threshold (or a band [threshold, upper])."""
    why = res.missing([label], measure)
    if why:
        return Verdict(None, why)
    return seed_test(list(by_seed(res, label, measure).values()), side, threshold, upper=upper, cap=cap_of(res),
                quantity=quantity or f"{measure} of '{label}'", paper=paper_value(res, label, measure))


def check_pair(res, a: str, b: str, measure: str, side: str, threshold: float, upper: Optional[float] = None) -> Verdict:
    """The paired difference a − b of ``measure`` over the seeds both arms ran, against a threshold; accuracy
    measures pass the random-init gate (both arms beat their random init) first."""
    why = res.missing([a, b], measure)
    if why:
        return Verdict(None, why)
    v = seed_test(paired(res, a, b, measure), side, threshold, upper=upper, cap=cap_of(res),
             quantity=f"{measure} '{a}' − '{b}', paired by seed", paper=paper_difference(res, a, b, measure))
    return accuracy_gated(res, [a, b], measure, v)


# --- collapse and training --------------------------------------------------------------------------
def no_complete_collapse(res, label: str, side: str = "above") -> Verdict:
    """The collapse margin of ``label`` over seeds against 0: above (no complete collapse) or below (collapse)."""
    why = res.missing([label], "collapse_margin")
    if why:
        return Verdict(None, why)
    return seed_test(list(by_seed(res, label, "collapse_margin").values()), side, 0.0, cap=cap_of(res),
                quantity=f"{COLLAPSE_QUANTITY} of '{label}'")


def spread_by_construction(res, label: str) -> str:
    """Why the output of arm ``label`` cannot lose its spread ("" when it can), from its merged config and its runs:
    BRIDGE's standardization layer (eq. 18: the loss sees every dimension of the projector output at unit
    variance), or an affine-free final BN on z when the loss acts on z (in training mode every dimension of z has
    unit batch variance; BN + MSE, Barlow Twins with SimSiam's projector). There the complete-collapse margin is
    vacuous (BN) or measures a tensor the loss does not see (STD: z before the layer)."""
    from .spec import merge

    try:
        arm = res.experiment.arm(label, res.scale)
    except KeyError:
        return ""
    exp, scale = res.experiment, res.scale
    cfg = merge(merge(exp.base, exp.scale_overrides.get(scale, {})), merge(arm.overrides, arm.scale_overrides.get(scale, {})))
    method = cfg.get("method", {})
    if method.get("name") == "bridge" and method.get("params", {}).get("standardize", True):
        return "BRIDGE's standardization layer (eq. 18) holds every dimension the loss sees at unit variance"
    runs = [r for r in res.runs(label) if r.ran]
    loss_on_z = bool(runs) and all(_loss_on_z(r) for r in runs)
    if cfg.get("model", {}).get("proj_final_bn", True) and loss_on_z and not cfg.get("phases"):
        return "an affine-free final BN holds every dimension of z at unit batch variance, and the loss acts on z"
    return ""


def _loss_on_z(rec) -> bool:
    """The run's diagnostics show its loss acting on z: it logged diagnostics, and either no predictor output P
    (``loss_on_p`` is logged only with a P) or ``loss_on_p`` below 0.5 (P is only a target, Mirror SimSiam)."""
    import statistics

    rows = [row for row in rec.history if row.get("kind") == "diag"]
    flags = [row["loss_on_p"] for row in rows if isinstance(row.get("loss_on_p"), (int, float))]
    return bool(rows) and (not flags or statistics.median(flags) < 0.5)


def single_dimension(res, label: str, side: str, reason: str) -> Verdict:
    v = check_arm(res, label, "erank", side, ERANK_FLOOR, quantity=f"effective rank of clean z of '{label}'")
    v.why = f"{reason}, so collapse is read from the effective rank (ZHANG Conjecture 2: a single dimension); {v.why}"
    return v


def not_collapsed(label: str) -> Callable:
    """No complete collapse alone: the collapse margin's interval above 0 (for sanity checks and for claims that
    are about collapse, not learning)."""
    return lambda res: no_complete_collapse(res, label, "above")


def collapses(label: str) -> Callable:
    """Complete collapse as ZHANG and BRIDGE define it: "f always outputs a constant" (ZHANG §2.1; §3.1 "all
    vectors Z are close to the center vector o, m_o approaches 1 and m_r approaches 0"; BRIDGE §1 "a single
    point"), of z or of P where the loss acts on P; a diverged run counts as collapsed (ZHANG A.4 reports
    Mirror's NaN run so). Holds when the interval of the collapse margin over seeds lies below 0. Where the spread
    cannot fail by construction (:func:`spread_by_construction`), when the effective rank of clean z lies below
    ERANK_FLOOR = 2 instead — ZHANG Conjecture 2: "when all the dimensions have the same values, equivalent to
    having a single dimension, which already collapses by itself"."""

    def rule(res) -> Verdict:
        reason = spread_by_construction(res, label)
        return single_dimension(res, label, "below", reason) if reason else no_complete_collapse(res, label, "below")

    return rule


def trains(label: str, accuracy: Optional[str] = "knn") -> Callable:
    """"Trains / does not collapse" as the papers judge it (ISSUE 19.3): no complete collapse (the collapse
    margin's interval above 0: ZHANG §3.1, Tables 1–5; BRIDGE Tables 3–4, where COLLAPSE replaces the accuracy)
    and a gain over the randomly initialized network (``accuracy``: per seed trained − random init, its interval
    above NOISE_FLOOR), since a network that learned nothing has not trained, whatever its spread. Where the
    spread cannot fail by construction (:func:`spread_by_construction`) the first test is replaced by the
    effective rank of clean z, its interval above ERANK_FLOOR = 2 (Conjecture 2's single dimension), not K − 1.
    ``accuracy=None``: data on which the random-init network is already at the ceiling (CENTER's blobs) cannot
    show a gain; the rule then judges collapse alone and says so."""

    def rule(res) -> Verdict:
        reason = spread_by_construction(res, label)
        parts = [single_dimension(res, label, "above", reason) if reason else no_complete_collapse(res, label, "above")]
        if accuracy:
            parts.append(beats_random_init(res, label, accuracy))
        v = all_of(parts)
        if not accuracy:
            v.why += "; no accuracy test: the random-init network is at this data's ceiling"
        return v

    return rule


# --- two arms ---------------------------------------------------------------------------------------
def greater(a: str, b: str, measure: str, margin: float = 0.0) -> Callable:
    """'a' > 'b' + margin: the paired difference a − b above ``margin``."""
    return lambda res: check_pair(res, a, b, measure, "above", margin)


def close(a: str, b: str, measure: str, tol: float) -> Callable:
    """|a − b| ≤ tol, an equivalence: the whole interval of the paired difference inside [−tol, tol]."""
    return lambda res: check_pair(res, a, b, measure, "inside", -tol, tol)


def slightly_below(a: str, b: str, measure: str, tol: float) -> Callable:
    """'a' a little below 'b': the paired difference a − b inside [−tol, 0]."""
    return lambda res: check_pair(res, a, b, measure, "inside", -tol, 0.0)


def _against_each(res, a: str, others: list, measure: str, tol: float) -> Verdict:
    why = res.missing([a] + list(others), measure)
    if why:
        return Verdict(None, why)
    return all_of([check_pair(res, a, o, measure, "above", -tol) for o in others])


def at_least_best_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """'a' is the best, up to tol: for every other arm the paired a − other lies above −tol (non-inferiority);
    fails when it lies below −tol for one of them; equal arms with a wide interval stay undecidable."""
    return lambda res: _against_each(res, a, others, measure, tol)


def not_below_min_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """'a' is comparable: not worse than the weakest other arm (lowest mean) by more than tol — the paired
    a − weakest above −tol."""

    def rule(res) -> Verdict:
        why = res.missing([a] + list(others), measure)
        if why:
            return Verdict(None, why)
        weakest = min(others, key=lambda o: res.mean(o, measure))
        v = check_pair(res, a, weakest, measure, "above", -tol)
        v.why = f"weakest of {', '.join(others)} by mean: '{weakest}'; {v.why}"
        return v

    return rule


def ordered(labels: list, measure: str, tol: float = 0.0) -> Callable:
    """labels[0] > labels[1] > ...: every consecutive paired difference above −tol."""
    return lambda res: all_of([check_pair(res, labels[i], labels[i + 1], measure, "above", -tol)
                               for i in range(len(labels) - 1)])


def each_greater(labels: list, a: str, b: str, margin: float = 0.0) -> Callable:
    """For every arm, measure ``a`` > measure ``b`` + margin within each run (per seed a − b, interval above margin)."""

    def rule(res) -> Verdict:
        why = res.missing(labels, a) or res.missing(labels, b)
        if why:
            return Verdict(None, why)
        return all_of([seed_test(per_run(res, lab, lambda x, y: x - y, a, b), "above", margin, cap=cap_of(res),
                            quantity=f"{a} − {b} of '{lab}'") for lab in labels])

    return rule


# --- one arm against a bound ------------------------------------------------------------------------
def compare(label: str, measure: str, op: str, threshold: float) -> Callable:
    """``measure`` of ``label`` op threshold, op in '<', '>'."""
    side = {"<": "below", ">": "above"}[op]
    return lambda res: check_arm(res, label, measure, side, threshold)


def within(label: str, measure: str, lo: float, hi: float) -> Callable:
    """lo ≤ ``measure`` of ``label`` ≤ hi: a magnitude the paper reports, with the tolerance the experiment states."""
    return lambda res: check_arm(res, label, measure, "inside", lo, upper=hi)


def changes(label: str, measure: str, direction: str, min_delta: float = 0.0) -> Callable:
    """Over training, per seed last logged value − first, above min_delta ('up') or below −min_delta ('down')."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return Verdict(None, why)
        deltas = [s[-1][1] - s[0][1] for s in res.series(label, measure) if len(s) >= 2]
        if not deltas:
            return Verdict(None, f"'{label}' logged {measure} fewer than twice")
        side, thr = ("above", min_delta) if direction == "up" else ("below", -min_delta)
        return seed_test(deltas, side, thr, cap=cap_of(res), quantity=f"change of {measure} of '{label}' from first to last log")

    return rule


# --- several arms -----------------------------------------------------------------------------------
def spearman(xs: list, ys: list) -> Optional[float]:
    """Spearman rank correlation (scipy, average ranks for ties); None for fewer than 3 points or no spread."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = float(sps.spearmanr(xs, ys).statistic)
    return None if math.isnan(rho) else rho


def per_seed_over_arms(res, labels: list, measure: str) -> dict:
    """seed -> [value of every arm] for the seeds every arm ran."""
    vals = {lab: by_seed(res, lab, measure) for lab in labels}
    seeds = sorted(set.intersection(*(set(v) for v in vals.values()))) if vals else []
    return {s: [vals[lab][s] for lab in labels] for s in seeds}


def trend(labels: list, measure: str, sign: int, min_rho: float = 0.6) -> Callable:
    """Across the arms' x (τ, momentum, d ...), the Spearman ρ(x, measure) of each seed ≥ min_rho (sign +1) or
    ≤ −min_rho (sign −1): per seed one ρ over the arms, its interval over seeds against the bound. Accuracy
    measures pass the random-init gate for every arm first."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return Verdict(None, why)
        xs = [res.x(lab) for lab in labels]
        rhos = [r for r in (spearman(xs, ys) for ys in per_seed_over_arms(res, labels, measure).values()) if r is not None]
        if not rhos:
            return Verdict(None, f"{measure}: no spread across the {len(labels)} arms in any seed")
        v = seed_test(rhos, "above" if sign > 0 else "below", min_rho if sign > 0 else -min_rho, cap=cap_of(res),
                 quantity=f"Spearman ρ(x, {measure}) over {len(labels)} arms, per seed")
        return accuracy_gated(res, labels, measure, v)

    return rule


def argmax_among(labels: list, measure: str, allowed: list) -> Callable:
    """The largest ``measure`` is at one of ``allowed``: the best allowed arm (by mean) minus the best other arm,
    paired by seed, above 0."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return Verdict(None, why)
        best = lambda group: max(group, key=lambda lab: res.mean(lab, measure))  # noqa: E731
        inside, outside = best([l for l in labels if l in allowed]), best([l for l in labels if l not in allowed])
        v = check_pair(res, inside, outside, measure, "above", 0.0)
        v.why = f"best of {', '.join(allowed)}: '{inside}', best other: '{outside}'; {v.why}"
        return v

    return rule
