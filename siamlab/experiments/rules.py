"""Verdict rules: small functions of :class:`~siamlab.experiments.results.Results` → (bool | None, why).

Every rule states its threshold in its explanation. They were fixed when the experiment was written,
from the paper's wording, before any run; a result that misses a threshold is reported as "not
reproduced", never re-tuned. ``None`` = undecidable (run missing, diagnostic not logged).
"""
from __future__ import annotations

from typing import Callable, Optional

from ..analysis.stats import pearson

Verdict = tuple  # (Optional[bool], str)


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _majority(res, label: str, measure: str) -> tuple[Optional[float], int]:
    vals = res.values(label, measure)
    return (sum(vals) / len(vals) if vals else None), len(vals)


def collapses(label: str) -> Callable:
    """Collapses (or diverges: ZHANG A.4 counts Mirror's NaN run as collapse) in most seeds."""

    def rule(res) -> Verdict:
        why = res.missing([label], "fails")
        if why:
            return None, why
        frac, n = _majority(res, label, "fails")
        div = sum(res.values(label, "diverged"))
        ok = frac > 0.5
        return ok, f"'{label}' collapsed or diverged in {frac * n:.0f}/{n} seeds ({div:.0f} diverged); rule: more than half"

    return rule


def trains(label: str) -> Callable:
    """Neither collapses nor diverges in most seeds."""

    def rule(res) -> Verdict:
        why = res.missing([label], "fails")
        if why:
            return None, why
        frac, n = _majority(res, label, "fails")
        return frac < 0.5, f"'{label}' collapsed or diverged in {frac * n:.0f}/{n} seeds; rule: fewer than half"

    return rule


def greater(a: str, b: str, measure: str, margin: float = 0.0) -> Callable:
    """mean(a) > mean(b) + margin."""

    def rule(res) -> Verdict:
        why = res.missing([a, b], measure)
        if why:
            return None, why
        ma, mb = res.mean(a, measure), res.mean(b, measure)
        return ma > mb + margin, f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: '{a}' > '{b}' + {margin:g}"

    return rule


def close(a: str, b: str, measure: str, tol: float) -> Callable:
    """|mean(a) − mean(b)| ≤ tol."""

    def rule(res) -> Verdict:
        why = res.missing([a, b], measure)
        if why:
            return None, why
        ma, mb = res.mean(a, measure), res.mean(b, measure)
        return abs(ma - mb) <= tol, f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: within {tol:g}"

    return rule


def slightly_below(a: str, b: str, measure: str, tol: float) -> Callable:
    """mean(b) − tol ≤ mean(a) < mean(b): 'a' is a little below 'b'."""

    def rule(res) -> Verdict:
        why = res.missing([a, b], measure)
        if why:
            return None, why
        ma, mb = res.mean(a, measure), res.mean(b, measure)
        ok = mb - tol <= ma < mb
        return ok, f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: below it by at most {tol:g}"

    return rule


def at_least_best_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """mean(a) ≥ max over others of mean − tol ('a' is the best, up to tol)."""

    def rule(res) -> Verdict:
        why = res.missing([a] + list(others), measure)
        if why:
            return None, why
        ma = res.mean(a, measure)
        best = max(others, key=lambda o: res.mean(o, measure))
        mb = res.mean(best, measure)
        return ma >= mb - tol, f"{measure}: '{a}' {_fmt(ma)}, best other '{best}' {_fmt(mb)}; rule: '{a}' ≥ best − {tol:g}"

    return rule


def not_below_min_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """mean(a) ≥ min over others − tol ('a' is comparable: not worse than the weakest by more than tol)."""

    def rule(res) -> Verdict:
        why = res.missing([a] + list(others), measure)
        if why:
            return None, why
        ma = res.mean(a, measure)
        worst = min(others, key=lambda o: res.mean(o, measure))
        mw = res.mean(worst, measure)
        return ma >= mw - tol, f"{measure}: '{a}' {_fmt(ma)}, weakest other '{worst}' {_fmt(mw)}; rule: '{a}' ≥ weakest − {tol:g}"

    return rule


def compare(label: str, measure: str, op: str, threshold: float) -> Callable:
    """mean(label) op threshold, op in '<', '>'."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return None, why
        m = res.mean(label, measure)
        ok = m < threshold if op == "<" else m > threshold
        return ok, f"{measure} of '{label}' = {_fmt(m)}; rule: {op} {threshold:g}"

    return rule


def changes(label: str, measure: str, direction: str, min_delta: float = 0.0) -> Callable:
    """Over training, last value − first value > min_delta ('up') or < −min_delta ('down'), seed mean."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return None, why
        deltas = [s[-1][1] - s[0][1] for s in res.series(label, measure) if len(s) >= 2]
        if not deltas:
            return None, f"'{label}' logged {measure} fewer than twice"
        d = sum(deltas) / len(deltas)
        ok = d > min_delta if direction == "up" else d < -min_delta
        sign = ">" if direction == "up" else "< −"
        return ok, f"{measure} of '{label}' changed by {d:+.3g} from first to last log; rule: {sign}{min_delta:g}"

    return rule


def spearman(xs: list, ys: list) -> Optional[float]:
    """Spearman rank correlation (average ranks for ties); None for fewer than 3 points or no spread."""
    if len(xs) < 3:
        return None

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r

    return pearson(ranks(xs), ranks(ys))


def trend(labels: list, measure: str, sign: int, min_rho: float = 0.6) -> Callable:
    """Across the arms' x (τ, momentum, d ...), Spearman ρ(x, measure) ≥ min_rho (sign +1) or ≤ −min_rho (−1)."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return None, why
        xs = [res.x(lab) for lab in labels]
        ys = [res.mean(lab, measure) for lab in labels]
        rho = spearman(xs, ys)
        if rho is None:
            return None, f"{measure}: no spread across {len(labels)} arms"
        ok = rho >= min_rho if sign > 0 else rho <= -min_rho
        want = f"≥ {min_rho:g}" if sign > 0 else f"≤ −{min_rho:g}"
        return ok, f"Spearman ρ(x, {measure}) = {rho:+.2f} over {len(labels)} arms; rule: {want}"

    return rule


def argmax_among(labels: list, measure: str, allowed: list) -> Callable:
    """The arm with the largest mean measure is one of ``allowed``."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return None, why
        best = max(labels, key=lambda lab: res.mean(lab, measure))
        return best in allowed, f"largest {measure} at '{best}' ({_fmt(res.mean(best, measure))}); rule: one of {', '.join(allowed)}"

    return rule


def each_greater(labels: list, a: str, b: str, margin: float = 0.0) -> Callable:
    """For every arm, mean(measure a) > mean(measure b) + margin."""

    def rule(res) -> Verdict:
        why = res.missing(labels, a) or res.missing(labels, b)
        if why:
            return None, why
        bad = [lab for lab in labels if not res.mean(lab, a) > res.mean(lab, b) + margin]
        parts = ", ".join(f"{lab}: {_fmt(res.mean(lab, a))} vs {_fmt(res.mean(lab, b))}" for lab in labels)
        return not bad, f"{a} vs {b} per arm ({parts}); rule: {a} > {b} + {margin:g} for every arm"

    return rule


def ordered(labels: list, measure: str, tol: float = 0.0) -> Callable:
    """mean(labels[0]) > mean(labels[1]) > ... (each step by more than −tol)."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return None, why
        ms = [res.mean(lab, measure) for lab in labels]
        ok = all(ms[i] > ms[i + 1] - tol for i in range(len(ms) - 1))
        chain = " > ".join(f"'{lab}' {_fmt(m)}" for lab, m in zip(labels, ms))
        return ok, f"{measure}: {chain}; rule: this order (tolerance {tol:g})"

    return rule


def correlation(labels: list, mx: str, my: str, sign: int) -> Callable:
    """Across arms, Pearson correlation of mean(mx) and mean(my) has the given sign (and is defined)."""

    def rule(res) -> Verdict:
        why = res.missing(labels, mx) or res.missing(labels, my)
        if why:
            return None, why
        xs = [res.mean(lab, mx) for lab in labels]
        ys = [res.mean(lab, my) for lab in labels]
        r = pearson(xs, ys)
        if r is None:
            return None, f"no spread in {mx} or {my} across arms"
        ok = r < 0 if sign < 0 else r > 0
        return ok, f"Pearson r({mx}, {my}) = {r:+.2f} over {len(labels)} arms; rule: {'negative' if sign < 0 else 'positive'}"

    return rule


def all_of(*rules: Callable) -> Callable:
    """All sub-rules hold; undecided if any is undecided and none failed."""

    def rule(res) -> Verdict:
        outs = [r(res) for r in rules]
        whys = "; ".join(w for _, w in outs)
        if any(o is False for o, _ in outs):
            return False, whys
        if any(o is None for o, _ in outs):
            return None, whys
        return True, whys

    return rule
