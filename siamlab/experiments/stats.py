"""Statistics over seeds (SPEC §4, ISSUE 19.1) and the :class:`Verdict` every claim rule returns.

A claim compares one quantity with a threshold: the paired difference of two arms (one seed gives both arms
the same data order, initial weights and views: :func:`siamlab.models.part_seed`), a per-run difference of two
measures, or one arm's value against a bound. Each seed gives one value of the quantity; over the n seeds
their mean and its 95 % Student-t interval, mean ± t(0.975, n − 1)·s/√n (``scipy.stats.t``). The claim

* **holds** when the interval clears the threshold on the claimed side,
* **fails** when it clears it on the opposite side,
* is **undecidable** otherwise, and always with fewer than two seeds (one value has no interval).

Sides: ``above`` (quantity > threshold), ``below`` (quantity < threshold) and ``inside`` (threshold ≤ quantity
≤ upper). An equivalence claim ("within tol", "≈ the paper's value") is ``inside``: it holds only when the whole
interval lies between the bounds — two one-sided tests, each at 2.5 % (the usual TOST takes the 90 % interval;
one interval for every claim is simpler to read and stricter) — and fails only when the interval lies wholly
outside them, so equal arms with a wide interval stay undecidable.

An undecidable verdict says whether more seeds could decide it (``more_seeds_could_decide``): the seeds it has
are fewer than the cap (:data:`siamlab.experiments.gates.SEED_CAP`) and, if the mean and the spread stayed what
they are, the interval at the cap would clear a side (one seed: unknown, so yes).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional

from scipy import stats as sps

CONFIDENCE = 0.95
UNDECIDABLE = "undecidable"  # the state of a claim the data cannot decide
SIDES = ("above", "below", "inside")


@dataclass(frozen=True)
class Interval:
    """Mean of the per-seed values with its Student-t interval (``lo``/``hi`` None below two seeds)."""

    mean: Optional[float]
    lo: Optional[float]
    hi: Optional[float]
    n: int
    sd: Optional[float]


def t_quantile(n: int) -> float:
    """t(0.975, n − 1): the half-width of the 95 % interval in standard errors, for n ≥ 2 seeds."""
    return float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def t_interval(values) -> Interval:
    vals = [float(v) for v in values]
    n = len(vals)
    if not n:
        return Interval(None, None, None, 0, None)
    mean = statistics.fmean(vals)
    if n < 2:
        return Interval(mean, None, None, 1, None)
    sd = statistics.stdev(vals)
    half = t_quantile(n) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def decide(lo: Optional[float], hi: Optional[float], side: str, threshold: float, upper: Optional[float] = None):
    """True / False / UNDECIDABLE for an interval [lo, hi] (module docstring); UNDECIDABLE without an interval."""
    if lo is None or hi is None:
        return UNDECIDABLE
    if side == "above":
        return True if lo > threshold else False if hi < threshold else UNDECIDABLE
    if side == "below":
        return True if hi < threshold else False if lo > threshold else UNDECIDABLE
    if side == "inside":
        return True if lo >= threshold and hi <= upper else False if hi < threshold or lo > upper else UNDECIDABLE
    raise ValueError(f"side {side!r} is not one of {SIDES}")


def could_decide(iv: Interval, side: str, threshold: float, upper: Optional[float], cap: int) -> bool:
    """Whether seeds up to ``cap`` could decide: fewer seeds than the cap and, with this mean and spread, the
    interval at the cap clears a side (one seed: the spread is unknown, so yes)."""
    if iv.n >= cap:
        return False
    if iv.n < 2:
        return True
    half = t_quantile(cap) * iv.sd / math.sqrt(cap)
    return decide(iv.mean - half, iv.mean + half, side, threshold, upper) != UNDECIDABLE


def fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def rule_text(side: str, threshold: float, upper: Optional[float] = None) -> str:
    if side == "inside":
        return f"95 % interval inside [{threshold:g}, {upper:g}]"
    return f"95 % interval {'above' if side == 'above' else 'below'} {threshold:g}"


@dataclass
class Verdict:
    """What a claim rule returns: its state (True held, False failed, None not run, :data:`UNDECIDABLE`), the
    explanation, and the numbers behind it — the quantity's mean over seeds (``value``), what the rule compares
    it with (``threshold``; ``upper`` for a band, ``side`` for the direction), its 95 % ``interval``, the paper's
    value of the same quantity where the paper gives one, what the quantity is, the seeds it was decided with
    and whether more seeds could decide it. :func:`siamlab.experiments.outputs.evaluate_claims` turns it into
    the claim's entry of results.json. Unpacks as ``state, why`` like the tuples rules returned before."""

    state: object
    why: str
    value: Optional[float] = None
    threshold: Optional[float] = None
    interval: Optional[tuple] = None
    paper: Optional[float] = None
    quantity: str = ""
    seeds: int = 0
    more_seeds_could_decide: bool = False
    side: str = ""
    upper: Optional[float] = None
    parts: list = field(default_factory=list)  # the component verdicts of a claim made of several tests

    def __iter__(self):
        return iter((self.state, self.why))

    def __getitem__(self, i):
        return (self.state, self.why)[i]

    @property
    def distance(self) -> Optional[float]:
        """Signed distance of the value from its threshold, positive on the claimed side (band: to the nearer bound)."""
        if self.value is None or self.threshold is None:
            return None
        if self.side == "below":
            return self.threshold - self.value
        if self.side == "inside":
            return min(self.value - self.threshold, self.upper - self.value)
        return self.value - self.threshold


def seed_test(values, side: str, threshold: float, *, quantity: str, cap: int, upper: Optional[float] = None,
         paper: Optional[float] = None, context: str = "") -> Verdict:
    """The verdict of one quantity over seeds against a threshold (module docstring)."""
    iv = t_interval(values)
    if iv.n == 0:
        return Verdict(None, f"{quantity}: no value", quantity=quantity, threshold=threshold, side=side, upper=upper)
    state = decide(iv.lo, iv.hi, side, threshold, upper)
    interval = None if iv.lo is None else (iv.lo, iv.hi)
    span = f"[{fmt(iv.lo)}, {fmt(iv.hi)}]" if interval else "no interval from one seed"
    why = f"{quantity} = {fmt(iv.mean)} ({span}, {iv.n} seed{'s' if iv.n != 1 else ''}); rule: {rule_text(side, threshold, upper)}"
    more = state == UNDECIDABLE and could_decide(iv, side, threshold, upper, cap)
    if state == UNDECIDABLE:
        why += f"; {seed_advice(more, iv.n, cap)}"
    return Verdict(state, f"{context}{why}", value=iv.mean, threshold=threshold, interval=interval, paper=paper,
                   quantity=quantity, seeds=iv.n, more_seeds_could_decide=more, side=side, upper=upper)


def seed_advice(more: bool, n: int, cap: int) -> str:
    if more:
        return f"more seeds (up to {cap}) could decide it"
    if n >= cap:
        return f"undecided at the seed cap ({cap})"
    return f"with this mean and spread even {cap} seeds would not decide it"


def all_of(parts: list, joiner: str = "; ") -> Verdict:
    """A claim made of several tests that must all hold: failed when one fails, not run when one is not run,
    undecidable when one is undecidable (more seeds could decide it when one of those could), else held. Its
    numbers are those of the deciding part: the first that failed, else the first not run, else the first
    undecidable, else the one closest to its threshold."""
    parts = [p for p in parts if p is not None]
    states = [p.state for p in parts]
    if False in states:
        state, lead = False, parts[states.index(False)]
    elif None in states:
        state, lead = None, parts[states.index(None)]
    elif UNDECIDABLE in states:
        state, lead = UNDECIDABLE, parts[states.index(UNDECIDABLE)]
    else:
        state = True
        lead = min(parts, key=lambda p: p.distance if p.distance is not None else math.inf)
    more = state == UNDECIDABLE and any(p.more_seeds_could_decide for p in parts if p.state == UNDECIDABLE)
    seeds = min((p.seeds for p in parts), default=0)
    return Verdict(state, joiner.join(p.why for p in parts), value=lead.value, threshold=lead.threshold,
                   interval=lead.interval, paper=lead.paper, quantity=lead.quantity, seeds=seeds,
                   more_seeds_could_decide=more, side=lead.side, upper=lead.upper, parts=list(parts))


def as_verdict(out) -> Verdict:
    """A rule's output as a Verdict (older rules return a (state, why) tuple)."""
    if isinstance(out, Verdict):
        return out
    state, why = out
    return Verdict(state, why)
