"""Verdict rules: small functions of :class:`~siamlab.experiments.results.Results` → (state, why).

state is ``True`` (the claim held), ``False`` (it did not), ``None`` (not run: an arm or a diagnostic is
missing) or :data:`~.gates.UNDECIDABLE` (the data cannot decide it at this scale: an accuracy comparison
between arms that do not beat random init, or a margin within twice the seed spread with fewer than three
seeds — see :mod:`.gates`). Every rule states its threshold, and for comparisons the margin and spread,
in its explanation. Rules are fixed when the experiment is written, from the paper's wording, before any
run; a result that misses a threshold is reported as "not reproduced", never re-tuned.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..analysis.stats import pearson
from .gates import UNDECIDABLE, gates, random_init_gate, spread

Verdict = tuple  # (True | False | None | UNDECIDABLE, str)


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _majority(res, label: str, measure: str) -> tuple[Optional[float], int]:
    vals = res.values(label, measure)
    return (sum(vals) / len(vals) if vals else None), len(vals)


def _with(text: str, extra: str) -> str:
    return f"{text} ({extra})" if extra else text


def collapses(label: str) -> Callable:
    """Collapses completely (z, or P where the loss acts on P) or diverges in most seeds (ZHANG A.4 counts
    Mirror's NaN run as collapse). Collapse is the run's verdict, :mod:`siamlab.analysis.verdict`."""

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
    """Neither collapses (completely, or on the loss's tensor P), nor collapses dimensionally, nor diverges,
    in most seeds. Dimensional collapse counts where the run measured it (clean projector features)."""

    def rule(res) -> Verdict:
        why = res.missing([label], "fails")
        if why:
            return None, why
        frac, n = _majority(res, label, "fails")
        dim, nd = _majority(res, label, "dim_collapse")
        dim_text = f", dimensional collapse in {dim * nd:.0f}/{nd}" if nd else ", dimensional collapse not measured"
        ok = frac < 0.5 and (not nd or dim < 0.5)
        return ok, f"'{label}' collapsed or diverged in {frac * n:.0f}/{n} seeds{dim_text}; rule: fewer than half of each"

    return rule


def _two(res, a: str, b: str, measure: str, margin: float, decide, explain) -> Verdict:
    why = res.missing([a, b], measure)
    if why:
        return None, why
    ma, mb = res.mean(a, measure), res.mean(b, measure)
    closed, text = gates(res, [a, b], measure, margin(ma, mb))
    if closed:
        return closed
    return decide(ma, mb), _with(explain(ma, mb), text)


def greater(a: str, b: str, measure: str, margin: float = 0.0) -> Callable:
    """mean(a) > mean(b) + margin."""
    return lambda res: _two(res, a, b, measure, lambda ma, mb: ma - mb - margin, lambda ma, mb: ma > mb + margin,
                            lambda ma, mb: f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: '{a}' > '{b}' + {margin:g}")


def close(a: str, b: str, measure: str, tol: float) -> Callable:
    """|mean(a) − mean(b)| ≤ tol."""
    return lambda res: _two(res, a, b, measure, lambda ma, mb: tol - abs(ma - mb), lambda ma, mb: abs(ma - mb) <= tol,
                            lambda ma, mb: f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: within {tol:g}")


def slightly_below(a: str, b: str, measure: str, tol: float) -> Callable:
    """mean(b) − tol ≤ mean(a) < mean(b): 'a' is a little below 'b'."""
    return lambda res: _two(res, a, b, measure, lambda ma, mb: min(ma - (mb - tol), mb - ma),
                            lambda ma, mb: mb - tol <= ma < mb,
                            lambda ma, mb: f"{measure}: '{a}' {_fmt(ma)} vs '{b}' {_fmt(mb)}; rule: below it by at most {tol:g}")


def _best(res, a: str, others: list, measure: str, pick, explain_word: str, tol: float) -> Verdict:
    labels = [a] + list(others)
    why = res.missing(labels, measure)
    if why:
        return None, why
    ma = res.mean(a, measure)
    ref = pick(others, key=lambda o: res.mean(o, measure))
    mb = res.mean(ref, measure)
    closed, text = gates(res, labels, measure, ma - (mb - tol))
    if closed:
        return closed
    return ma >= mb - tol, _with(f"{measure}: '{a}' {_fmt(ma)}, {explain_word} other '{ref}' {_fmt(mb)}; "
                                 f"rule: '{a}' ≥ {explain_word} − {tol:g}", text)


def at_least_best_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """mean(a) ≥ max over others of mean − tol ('a' is the best, up to tol)."""
    return lambda res: _best(res, a, others, measure, max, "best", tol)


def not_below_min_of(a: str, others: list, measure: str, tol: float) -> Callable:
    """mean(a) ≥ min over others − tol ('a' is comparable: not worse than the weakest by more than tol)."""
    return lambda res: _best(res, a, others, measure, min, "weakest", tol)


def compare(label: str, measure: str, op: str, threshold: float) -> Callable:
    """mean(label) op threshold, op in '<', '>'."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return None, why
        m = res.mean(label, measure)
        closed, text = gates(res, [label], measure, (m - threshold) if op == ">" else (threshold - m))
        if closed:
            return closed
        ok = m < threshold if op == "<" else m > threshold
        return ok, _with(f"{measure} of '{label}' = {_fmt(m)}; rule: {op} {threshold:g}", text)

    return rule


def within(label: str, measure: str, lo: float, hi: float) -> Callable:
    """lo ≤ mean(label) ≤ hi: a magnitude the paper reports, with the tolerance stated by the experiment."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return None, why
        m = res.mean(label, measure)
        closed, text = gates(res, [label], measure, min(m - lo, hi - m))
        if closed:
            return closed
        return lo <= m <= hi, _with(f"{measure} of '{label}' = {_fmt(m)}; rule: in [{lo:g}, {hi:g}]", text)

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
        from .results import mean_std

        d, sd = mean_std(deltas)
        margin = d - min_delta if direction == "up" else -d - min_delta
        text = f"margin {margin:+.3g}, seed spread {sd:.3g}, {len(deltas)} seed(s)"
        if abs(margin) <= 2 * sd and len(deltas) < 3:
            return UNDECIDABLE, f"{text}: within 2 × spread, decided only with ≥ 3 seeds"
        ok = margin > 0
        sign = ">" if direction == "up" else "< −"
        return ok, f"{measure} of '{label}' changed by {d:+.3g} from first to last log; rule: {sign}{min_delta:g} ({text})"

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


def _fragile(values: list, decide, s: float) -> bool:
    """Would swapping any two values closer than 2·s flip ``decide(values)``? (a rank statistic's margin)"""
    base = decide(values)
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if abs(values[i] - values[j]) <= 2 * s:
                v = list(values)
                v[i], v[j] = v[j], v[i]
                if decide(v) != base:
                    return True
    return False


def rank_gate(res, labels: list, measure: str, values: list, decide) -> Optional[Verdict]:
    """Gates of a rank statistic over arms: random init, then fragility under swaps within 2·spread."""
    closed = random_init_gate(res, labels, measure)
    if closed is not None:
        return closed
    s, n = spread(res, labels, measure)
    if n < 3 and _fragile(values, decide, s):
        return UNDECIDABLE, (f"{measure}: two arms within 2 × seed spread ({s:.3g}, {n} seed(s)) could swap ranks and flip "
                             "the verdict; decided only with ≥ 3 seeds")
    return None


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

        def decide(v):
            r = spearman(xs, v)
            return r is not None and (r >= min_rho if sign > 0 else r <= -min_rho)

        closed = rank_gate(res, labels, measure, ys, decide)
        if closed:
            return closed
        want = f"≥ {min_rho:g}" if sign > 0 else f"≤ −{min_rho:g}"
        return decide(ys), f"Spearman ρ(x, {measure}) = {rho:+.2f} over {len(labels)} arms; rule: {want}"

    return rule


def argmax_among(labels: list, measure: str, allowed: list) -> Callable:
    """The arm with the largest mean measure is one of ``allowed``."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return None, why
        ys = [res.mean(lab, measure) for lab in labels]
        decide = lambda v: labels[max(range(len(v)), key=v.__getitem__)] in allowed  # noqa: E731
        closed = rank_gate(res, labels, measure, ys, decide)
        if closed:
            return closed
        best = labels[max(range(len(ys)), key=ys.__getitem__)]
        return decide(ys), f"largest {measure} at '{best}' ({_fmt(max(ys))}); rule: one of {', '.join(allowed)}"

    return rule


def each_greater(labels: list, a: str, b: str, margin: float = 0.0) -> Callable:
    """For every arm, mean(measure a) > mean(measure b) + margin."""

    def rule(res) -> Verdict:
        why = res.missing(labels, a) or res.missing(labels, b)
        if why:
            return None, why
        gaps = [res.mean(lab, a) - res.mean(lab, b) - margin for lab in labels]
        closed, text = gates(res, labels, a, min(gaps))
        if closed:
            return closed
        parts = ", ".join(f"{lab}: {_fmt(res.mean(lab, a))} vs {_fmt(res.mean(lab, b))}" for lab in labels)
        return min(gaps) > 0, _with(f"{a} vs {b} per arm ({parts}); rule: {a} > {b} + {margin:g} for every arm", text)

    return rule


def ordered(labels: list, measure: str, tol: float = 0.0) -> Callable:
    """mean(labels[0]) > mean(labels[1]) > ... (each step by more than −tol)."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return None, why
        ms = [res.mean(lab, measure) for lab in labels]
        steps = [ms[i] - ms[i + 1] + tol for i in range(len(ms) - 1)]
        closed, text = gates(res, labels, measure, min(steps))
        if closed:
            return closed
        chain = " > ".join(f"'{lab}' {_fmt(m)}" for lab, m in zip(labels, ms))
        return min(steps) > 0, _with(f"{measure}: {chain}; rule: this order (tolerance {tol:g})", text)

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

        def decide(v):
            c = pearson(xs, v)
            return c is not None and (c < 0 if sign < 0 else c > 0)

        closed = rank_gate(res, labels, my, ys, decide) or random_init_gate(res, labels, mx)
        if closed:
            return closed
        return decide(ys), f"Pearson r({mx}, {my}) = {r:+.2f} over {len(labels)} arms; rule: {'negative' if sign < 0 else 'positive'}"

    return rule
