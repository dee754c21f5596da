"""Verdict rules specific to ZHANG's figures (the generic ones are in :mod:`.rules`).

Each was written from the paper's wording before the smoke runs and is tested on synthetic histories
that must pass, ones that must fail and ones that must stay undecidable (tests/test_zhang_rules.py). Every one
decides one quantity per seed with its 95 % interval over seeds (:mod:`..stats`).
"""
from __future__ import annotations

from typing import Callable

from .. import measures
from .. import rules as R
from ..gates import accuracy_gated, cap_of, paired, per_run
from ..stats import UNDECIDABLE, Verdict, seed_test

PAPER_EPOCH_STEPS = 195  # one CIFAR-100 epoch at ZHANG A.1's batch of 256: 50 000 // 256 optimizer steps
MAGNITUDE_FACTOR = 2.0


def magnitude(label: str, measure: str, paper: float) -> Callable:
    """End-of-training value has the paper's sign and lies within a factor of MAGNITUDE_FACTOR of the paper's
    value: the whole 95 % interval over seeds inside the band (ZHANG §3.4: "their cosine similarity is zero when
    η_p is around −0.5" and "when η_z is set to around 0.2" — a value read off a figure)."""
    lo, hi = sorted((paper / MAGNITUDE_FACTOR, paper * MAGNITUDE_FACTOR))
    return R.within(label, measure, lo, hi)


def below_peak(label: str, measure: str, frac: float) -> Callable:
    """End-of-training value ≤ frac × the maximum logged value, per seed end − frac·peak, its interval below 0 (the
    quantity decreased after its peak; ZHANG §3.5: "except in the first few epochs, SimSiam decreases the
    covariance during the whole training"; §4: "InfoNCE also decreases the covariance value during training")."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return Verdict(None, why)
        gaps = per_run(res, label, lambda end, peak: end - frac * peak, measure, measure + "_max")
        return seed_test(gaps, "below", 0.0, cap=cap_of(res), quantity=f"end − {frac:g} × peak of {measure} of '{label}'")

    return rule


def falls_at_high(labels: list, measure: str, margin: float) -> Callable:
    """The arm with the largest x is more than ``margin`` below the best arm (by mean): the paired difference
    best − highest-x above ``margin`` (ZHANG A.7: "a higher temperature tends to decrease the effect of
    de-correlation ... which also leads to a performance drop", Fig. 7b). Accuracy passes the random-init gate."""

    def rule(res) -> Verdict:
        why = res.missing(labels, measure)
        if why:
            return Verdict(None, why)
        high = max(labels, key=res.x)
        best = max(labels, key=lambda lab: res.mean(lab, measure))
        v = seed_test(paired(res, best, high, measure), "above", margin, cap=cap_of(res),
                      quantity=f"{measure} best arm '{best}' − highest-x arm '{high}', paired by seed")
        return accuracy_gated(res, sorted({high, best}), measure, v)

    return rule


def _steps_per_epoch(rec) -> float:
    s = rec.summary
    return s["steps"] / s["epochs_done"] if s.get("epochs_done") else 0.0


def phase_values(res, label: str) -> tuple:
    """Per seed (seed, m_r at the end of the SimSiam phase, at the end of the collapse phase, best within one paper
    epoch of de-correlation, that window in epochs), and the seeds that did not log m_r in all three phases."""
    e1, e2 = (p["epoch"] for p in res.experiment.arm(label, res.scale).overrides["phases"][1:3])
    rows, partial = [], []
    for rec in res.runs(label):
        if not rec.ran or not _steps_per_epoch(rec):
            continue
        window = PAPER_EPOCH_STEPS / _steps_per_epoch(rec)
        s = measures.series(rec, "m_r")
        before = [v for e, v in s if e <= e1]
        during = [v for e, v in s if e1 < e <= e2]
        after = [v for e, v in s if e2 < e <= e2 + window]
        if before and during and after:
            rows.append((rec.seed, before[-1], during[-1], max(after), window))
        else:
            partial.append(str(rec.seed))
    return rows, partial


def recovery_rule(label: str) -> Callable:
    """ZHANG §3.5, Fig. 5b: "we train SimSiam normally with the loss in Eq 2 and train for several epochs with the
    loss in Eq 1 for intentionally decreasing the m_r to close to zero. Then, we train the loss with only a
    correlation regularization term ... this regularization term increases m_r at a very fast rate."

    Premise (the procedure produced what the claim starts from): per seed, m_r at the end of the collapse phase
    over m_r at the end of the SimSiam phase, its interval below 0.5 (the collapse phase at least halved m_r).
    When it lies above 0.5 the premise failed and the claim cannot be tested (undecidable; more seeds do not
    help); while it is undecided, so is the claim. Claim: per seed the share of that drop regained within one
    paper epoch of optimizer steps (PAPER_EPOCH_STEPS, 195) after the switch, (best − collapsed)/(SimSiam −
    collapsed), its interval above 0.5. A seed that did not log m_r in all three phases (it stopped early) is
    left out and named (not run when no seed logged all three)."""

    def rule(res) -> Verdict:
        why = res.missing([label], "m_r")
        if why:
            return Verdict(None, why)
        rows, partial = phase_values(res, label)
        if not rows:
            return Verdict(None, f"'{label}' has no finished run" if not partial else
                           "m_r was not logged in every phase (raise the diagnostic frequency or the epochs)")
        seed, b, d, a, window = rows[0]
        text = (f"m_r end of SimSiam {b:.3f} → end of collapse phase {d:.3f} → best within {window:.1f} epochs "
                f"({PAPER_EPOCH_STEPS} steps) of de-correlation {a:.3f} (seed {seed} of {len(rows)})")
        if partial:
            text += f"; seed(s) {', '.join(partial)} did not log m_r in every phase and are left out"
        cap = cap_of(res)
        premise = seed_test([r[2] / r[1] for r in rows], "below", 0.5, cap=cap,
                            quantity="m_r end of collapse phase / end of SimSiam phase (premise)")
        if premise.state is not True:
            premise.why = f"{text}; {premise.why}"
            if premise.state is False:
                premise.why += "; premise failed: the collapse phase did not halve m_r, so recovery cannot be tested"
                premise.more_seeds_could_decide = False
            premise.state = UNDECIDABLE
            return premise
        v = seed_test([(r[3] - r[2]) / (r[1] - r[2]) for r in rows], "above", 0.5, cap=cap,
                      quantity=f"share of the m_r drop regained within {PAPER_EPOCH_STEPS} steps of de-correlation")
        v.why = f"{text}; {premise.why}; {v.why}"
        return v

    return rule
