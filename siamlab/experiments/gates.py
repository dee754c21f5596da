"""When a claim can be decided at all (SPEC §4): the random-init gate and the seed-spread gate.

A rule of :mod:`.rules` first asks these gates; a gate that closes makes the claim *undecidable at this
scale* — its own state, counted apart from "reproduced", "not reproduced" and "not run".

**Random-init gate** (accuracy measures only: ``knn``, ``knn_proj``, ``ncm``). An accuracy comparison is
decided only between arms that learned something: for every arm it compares, the mean over seeds of
(trained − random-init) accuracy must exceed ``max(seed spread, NOISE_FLOOR)``, where the seed spread is
the sample standard deviation of the arm's trained accuracy. Each run evaluates its own network at
initialization (same seed, same weights before the first step), so the gain is paired per seed. Why:
on easy data a randomly initialized ConvNet already reaches a high kNN accuracy (≈ 95 % on scikit-learn
digits, ≈ 75 % on Fashion-MNIST), and an arm below that line ranks how much training *damaged* random
features, not what it learned (issue 11, point 1).

**Seed-spread gate** (every comparison). The margin of a claim is how far the observed quantity is from
the rule's threshold (``a − b − margin`` for "a > b + margin", ``tol − |a − b|`` for "within tol" ...).
When ``|margin| ≤ 2 × spread`` the verdict could flip with another seed, so it is decided only with at
least ``MIN_SEEDS`` seeds; with fewer it is undecidable and says so, with margin and spread. The spread
is the largest seed standard deviation among the arms involved; for accuracies it is at least
``NOISE_FLOOR``, since one seed shows no spread but the test set still samples the accuracy.

NOISE_FLOOR = 1 accuracy point: the binomial standard error of an accuracy near 77 % measured on the
2 000 test images of the smoke scale is 100·√(0.77·0.23/2000) ≈ 0.94 points.
"""
from __future__ import annotations

from typing import Optional

UNDECIDABLE = "undecidable"  # the first element of a rule's verdict when a gate closes
ACCURACY = ("knn", "knn_proj", "ncm")
NOISE_FLOOR = 1.0
MIN_SEEDS = 3


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def gain_over_init(res, label: str, measure: str) -> tuple:
    """(mean gain, seed spread of the trained value, seeds): trained − random-init, paired per seed."""
    from . import measures

    gains, trained = [], []
    for r in res.runs(label):
        t, i = measures.value(r, measure), measures.value(r, measure + "_init")
        if t is not None and i is not None:
            gains.append(t - i)
            trained.append(t)
    if not gains:
        return None, None, 0
    from .results import mean_std

    return mean_std(gains)[0], mean_std(trained)[1], len(gains)


def beats_random_init(res, label: str, measure: str) -> tuple:
    """(True | False | None, text): the random-init gate for one arm (None: no random-init evaluation)."""
    gain, spread, n = gain_over_init(res, label, measure)
    if gain is None:
        return None, f"'{label}' has no random-init {measure} (eval.random_init was off)"
    need = max(spread, NOISE_FLOOR)
    ok = gain > need
    verb = "beats" if ok else "does not beat"
    return ok, f"'{label}' {verb} random init on {measure} (gain {gain:+.2f} over {n} seed(s); needs > {need:.2f})"


def random_init_gate(res, labels: list, measure: str) -> Optional[tuple]:
    """None when every arm beats random init (or ``measure`` is not an accuracy); else (UNDECIDABLE, why)."""
    if measure not in ACCURACY:
        return None
    bad = []
    for lab in labels:
        ok, text = beats_random_init(res, lab, measure)
        if not ok:
            bad.append(text)
    if bad:
        return UNDECIDABLE, "accuracy compared only between arms that beat random init: " + "; ".join(bad)
    return None


def spread(res, labels: list, measure: str) -> tuple:
    """(spread, fewest seeds) over the arms: largest seed std, floored at NOISE_FLOOR for accuracies."""
    stats = [res.stats(lab, measure) for lab in labels]
    s = max((st["std"] or 0.0) for st in stats) if stats else 0.0
    if measure in ACCURACY:
        s = max(s, NOISE_FLOOR)
    return s, min((st["n"] for st in stats), default=0)


def spread_gate(res, labels: list, measure: str, margin: float) -> tuple:
    """(closed: Optional[tuple], text): (UNDECIDABLE, why) when |margin| ≤ 2·spread with < MIN_SEEDS seeds,
    else None; ``text`` states margin, spread and seeds for the rule's explanation."""
    s, n = spread(res, labels, measure)
    text = f"margin {margin:+.3g}, seed spread {s:.3g}, {n} seed(s)"
    if abs(margin) <= 2 * s and n < MIN_SEEDS:
        return (UNDECIDABLE, f"{text}: within 2 × spread, decided only with ≥ {MIN_SEEDS} seeds"), text
    return None, text


def gates(res, labels: list, measure: str, margin: float) -> tuple:
    """Both gates: (closed verdict or None, margin/spread text)."""
    closed = random_init_gate(res, labels, measure)
    if closed is not None:
        return closed, ""
    return spread_gate(res, labels, measure, margin)
