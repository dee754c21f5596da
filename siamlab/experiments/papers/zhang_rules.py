"""Verdict rules specific to ZHANG's figures (the generic ones are in :mod:`.rules`).

Each was written from the paper's wording before the smoke runs and is tested on synthetic histories
that must pass and ones that must fail (tests/test_zhang_rules.py).
"""
from __future__ import annotations

from typing import Callable

from .. import measures
from .. import rules as R
from ..gates import UNDECIDABLE, gates

DIM_COLLAPSE = "dim_collapse"
PAPER_EPOCH_STEPS = 195  # one CIFAR-100 epoch at ZHANG A.1's batch of 256: 50 000 // 256 optimizer steps
MAGNITUDE_FACTOR = 2.0


def magnitude(label: str, measure: str, paper: float) -> Callable:
    """End-of-training value has the paper's sign and lies within a factor of MAGNITUDE_FACTOR of the paper's
    value (ZHANG Fig. 5a reports η_p ≈ −0.5 and η_z ≈ 0.2: "around" a value read off a figure)."""
    lo, hi = sorted((paper / MAGNITUDE_FACTOR, paper * MAGNITUDE_FACTOR))
    return R.within(label, measure, lo, hi)


def below_peak(label: str, measure: str, frac: float) -> Callable:
    """End-of-training value ≤ frac × the maximum logged value (the quantity decreased after its peak;
    ZHANG Fig. 6: "except in the first few epochs, SimSiam decreases the covariance")."""

    def rule(res):
        why = res.missing([label], measure)
        if why:
            return None, why
        end, peak = res.mean(label, measure), res.mean(label, measure + "_max")
        closed, text = gates(res, [label], measure, frac * peak - end)
        if closed:
            return closed
        return end <= frac * peak, f"{measure} of '{label}': end {end:.4g}, peak {peak:.4g}; rule: end ≤ {frac:g} × peak ({text})"

    return rule


def falls_at_high(labels: list, measure: str, margin: float) -> Callable:
    """The arm with the largest x is more than ``margin`` below the best arm (ZHANG Fig. 7b)."""

    def rule(res):
        why = res.missing(labels, measure)
        if why:
            return None, why
        high = max(labels, key=res.x)
        best = max(labels, key=lambda lab: res.mean(lab, measure))
        mh, mb = res.mean(high, measure), res.mean(best, measure)
        closed, text = gates(res, sorted({high, best}), measure, mb - mh - margin)
        if closed:
            return closed
        return mh < mb - margin, (f"{measure}: highest-x arm '{high}' {mh:.3g}, best '{best}' {mb:.3g}; rule: below best by "
                                  f"more than {margin:g} ({text})")

    return rule


def _steps_per_epoch(rec) -> float:
    s = rec.summary
    return s["steps"] / s["epochs_done"] if s.get("epochs_done") else 0.0


def recovery_rule(label: str) -> Callable:
    """ZHANG Fig. 5b: after SimSiam, the collapsing loss "decreas[es] the m_r to close to zero", then the
    de-correlation loss alone "increases m_r at a very fast rate".

    Premise (else undecidable: the procedure did not produce what the claim starts from): m_r at the end of the
    collapse phase is at most half its value at the end of the SimSiam phase. Claim: within one paper epoch of
    optimizer steps (PAPER_EPOCH_STEPS, 195) after the switch to de-correlation, m_r regains at least half of
    that drop. Decided by the majority of seeds whose premise held; a seed that did not log m_r in all three
    phases (it stopped early) cannot show the premise either way and is left out, named in the explanation
    (not run when no seed logged all three)."""

    def rule(res):
        why = res.missing([label], "m_r")
        if why:
            return None, why
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
            if not (before and during and after):
                partial.append(str(rec.seed))
                continue
            b, d, a = before[-1], during[-1], max(after)
            rows.append((d <= 0.5 * b, a - d >= 0.5 * (b - d), b, d, a, window, rec.seed))
        if not rows:
            return None, (f"'{label}' has no finished run" if not partial else
                          "m_r was not logged in every phase (raise the diagnostic frequency or the epochs)")
        b, d, a, window, seed = rows[0][2:]
        text = (f"m_r end of SimSiam {b:.3f} → end of collapse phase {d:.3f} → best within {window:.1f} epochs "
                f"({PAPER_EPOCH_STEPS} steps) of de-correlation {a:.3f} (seed {seed} of {len(rows)})")
        if partial:
            text += (f"; seed{'s' if len(partial) > 1 else ''} {', '.join(partial)} did not log m_r in every phase "
                     f"and {'are' if len(partial) > 1 else 'is'} left out")
        held = [r for r in rows if r[0]]
        if len(held) * 2 <= len(rows):
            return UNDECIDABLE, f"{text}; premise failed: the collapse phase did not halve m_r, so recovery cannot be tested"
        ok = sum(r[1] for r in held) * 2 > len(held)
        return ok, f"{text}; rule: the first {PAPER_EPOCH_STEPS} steps of de-correlation regain ≥ half of the drop"

    return rule
