"""When a claim can be decided (SPEC §4, ISSUE 19.1): values paired by seed, the random-init gate, the seed cap.

Every claim is decided by :mod:`.stats` (a 95 % Student-t interval over seeds against the claim's threshold).
This module collects the per-seed values a rule tests and holds the two rules that come before any comparison:

**Pairing.** Two arms are compared seed by seed: ``paired(res, a, b, measure)`` gives a − b for every seed
both arms ran (one seed gives both the same data order, initial weights and views), so what the interval
measures is the effect of the arm, not the luck of the seed.

**Random-init gate** (accuracy measures only: ``knn``, ``knn_proj``, ``ncm``). Accuracy is compared only
between arms that beat their own randomly initialized network by the same test: per seed, the trained
accuracy minus the random-init accuracy of the same network (same seed, same weights before the first
step); the arm beats random init when the 95 % interval of that gain lies above :data:`NOISE_FLOOR`. On
easy data a random network already scores high (each table's random-init row: most of the way up on the
Fashion-MNIST smoke subset, at the ceiling on the blobs toy), and an arm below that line ranks how much
training *damaged* random features, not what it learned (issue 11). While an arm's gain is undecidable the comparison is undecidable; when the gain
clearly stays below the floor (its interval lies below it) the comparison is undecidable and more seeds
cannot change that.

NOISE_FLOOR = 1 accuracy point: a gain smaller than the test set's own sampling error is no evidence of
learning. Every seed is evaluated on the same test images, so the interval over seeds does not contain that
error; for two networks scored on the same N test images it is about √(q/N), q the share of images on which
they disagree — with N = 2 000 (the smoke subset) and a fifth of the images changing their label about 1 point,
as large as the binomial standard error of one accuracy near 75 % (100·√(0.75·0.25/2000) ≈ 0.97).

**Seed cap.** An undecidable claim asks for more seeds; the runner adds them up to ``seed_cap(exp, scale)``:
:data:`SEED_CAP` at that scale, or the experiment's own seeds if more. Smoke: 8 (t(0.975, 7) = 2.36: the
interval is then ±0.84 seed standard deviations). Paper: 5, the seeds CENTER averages its figures over (GPU
runs of hundreds of epochs). Tiny: 1 (plumbing only; its verdicts mean nothing).
"""
from __future__ import annotations

from typing import Callable, Optional

from . import measures
from .stats import UNDECIDABLE, Verdict, seed_test

ACCURACY = ("knn", "knn_proj", "ncm")
NOISE_FLOOR = 1.0
SEED_CAP = {"tiny": 1, "smoke": 8, "paper": 5}
DEFAULT_CAP = 8  # a Results without a scale (tests, hand-made results)

__all__ = ["ACCURACY", "NOISE_FLOOR", "SEED_CAP", "UNDECIDABLE", "seed_cap", "cap_of", "by_seed", "paired",
           "per_run", "beats_random_init", "random_init_gate", "accuracy_gated"]


def seed_cap(exp, scale: str) -> int:
    """The most seeds the runner may run for an undecidable claim of ``exp`` at ``scale``."""
    own = (getattr(exp, "seeds", None) or {}).get(scale, 1)
    return max(own, SEED_CAP.get(scale, DEFAULT_CAP))


def cap_of(res) -> int:
    return seed_cap(res.experiment, res.scale)


def by_seed(res, label: str, measure: str) -> dict:
    """seed -> end-of-run value of ``measure`` for every run of arm ``label`` that has it."""
    out = {}
    for r in res.runs(label):
        v = measures.value(r, measure)
        if v is not None:
            out[r.seed] = v
    return out


def paired(res, a: str, b: str, measure: str, combine: Callable = lambda x, y: x - y) -> list:
    """``combine(a, b)`` (default a − b) of the two arms' values, one per seed both have."""
    va, vb = by_seed(res, a, measure), by_seed(res, b, measure)
    return [combine(va[s], vb[s]) for s in sorted(set(va) & set(vb))]


def per_run(res, label: str, fn: Callable, *measures_: str) -> list:
    """``fn(*values)`` for every run of ``label`` that has all of ``measures_`` (e.g. a − b within a run)."""
    out = []
    for r in res.runs(label):
        vals = [measures.value(r, m) for m in measures_]
        if all(v is not None for v in vals):
            out.append(fn(*vals))
    return out


def paper_value(res, label: str, measure: str) -> Optional[float]:
    """The paper's number for ``measure`` of arm ``label`` (None when the paper gives none or not a number)."""
    try:
        v = res.experiment.arm(label, res.scale).paper.get(measure)
    except KeyError:
        return None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def paper_difference(res, a: str, b: str, measure: str) -> Optional[float]:
    pa, pb = paper_value(res, a, measure), paper_value(res, b, measure)
    return None if pa is None or pb is None else pa - pb


def beats_random_init(res, label: str, measure: str) -> Verdict:
    """Whether arm ``label`` beats its random-init network on ``measure`` (module docstring): the per-seed gain
    trained − random init, its 95 % interval above NOISE_FLOOR. None (not run) without random-init values."""
    gains = per_run(res, label, lambda t, i: t - i, measure, measure + "_init")
    if not gains:
        return Verdict(None, f"'{label}' has no random-init {measure} (eval.random_init was off)")
    return seed_test(gains, "above", NOISE_FLOOR, quantity=f"{measure} gain of '{label}' over its random init", cap=cap_of(res),
                paper=None)


def random_init_gate(res, labels: list, measure: str) -> Optional[Verdict]:
    """None when ``measure`` is not an accuracy or every arm beats random init; else the UNDECIDABLE verdict
    naming the arms that do not (more seeds could decide it when every such arm's gain is still undecided and
    could be decided)."""
    if measure not in ACCURACY:
        return None
    gates = [beats_random_init(res, lab, measure) for lab in labels]
    bad = [g for g in gates if g.state is not True]
    if not bad:
        return None
    if any(g.state is None for g in bad):
        return next(g for g in bad if g.state is None)
    more = all(g.state == UNDECIDABLE and g.more_seeds_could_decide for g in bad)
    return Verdict(UNDECIDABLE, "accuracy is compared only between arms that beat their random init: "
                   + "; ".join(g.why for g in bad), seeds=min(g.seeds for g in bad), more_seeds_could_decide=more)


def accuracy_gated(res, labels: list, measure: str, verdict: Verdict) -> Verdict:
    """``verdict`` of a comparison on ``measure``, made undecidable by the random-init gate where it closes. The
    comparison's own numbers stay in the verdict (they are what a scale curve plots)."""
    gate = random_init_gate(res, labels, measure)
    if gate is None or verdict.state is None:
        return verdict
    if gate.state is None:
        return gate
    comparison_open = verdict.state == UNDECIDABLE and not verdict.more_seeds_could_decide
    verdict.state = UNDECIDABLE
    verdict.why = f"{gate.why} — so: {verdict.why}"
    verdict.more_seeds_could_decide = gate.more_seeds_could_decide and not comparison_open
    if not verdict.more_seeds_could_decide:
        verdict.why += "; more seeds would not decide it (the gate stays closed or the comparison stays open)"
    return verdict
