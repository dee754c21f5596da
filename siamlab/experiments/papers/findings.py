"""What the smoke runs showed where a result did not reproduce or could not be decided: which claim failed, with its
value, 95 % interval and threshold, what the experiment's scale curve showed, and the verdict at its largest budget.

This is a reading of recorded runs, not a rule: it decides nothing (the verdicts come from the claims' rules, written
before the runs) and it is shown only beside results of the scale it was written for. Every number below was read
from the smoke catalogue of 2026-12-03 (`siamlab reproduce ID --scale smoke --jobs 2`, the 2-core development CPU,
one thread per run; each folder's results.json) and from the scale curves measured beside it
(`siamlab reproduce ID --scale smoke --curve 1,B2,B3 --jobs 1`: each curve's budgets, seeds and CPU time are in
docs/curves.md, its numbers in curve.json). "Toward / away / none" is the curve's trend rule
(:func:`siamlab.experiments.curves.trend`: the 95 % intervals at the smallest and the largest budget do not overlap,
and the distance to the paper's value, else the rule's threshold, shrank / grew). A rerun on another machine can
differ in the last digits; where the table of a new run disagrees with a number here, the table is right and this
reading is out of date.
"""
from __future__ import annotations

SCALE = "smoke"
DATE = "2026-12-03"

SMOKE = {
    "zhang-t1": "'The moving-average target trains' fails on its kNN gain over random init: −5.31 points (95 % interval "
                "[−8.40, −2.22], 5 seeds; rule: above +1): training lowers kNN from 72.2 to 66.9; its collapse margin "
                "−0.047 [−0.120, +0.026] sits on the complete-collapse threshold (√d·std 0.091; 4 of 5 runs' verdicts "
                "say collapsed). Both same-batch arms collapse as in ZHANG (margins −0.51 and −0.52). No scale curve: "
                "the failing arm already moves away from ZHANG's value inside its runs — √d·std of clean z 0.099 at "
                "epoch 5 and 0.093 at epoch 10 (mean of 5 seeds), kNN 66.7 and 66.9 — so more steps of this setting "
                "cannot lift it. The setting differs from ZHANG's: the smoke projector has no final BN (the deviation "
                "that lets the same-batch arms collapse within 10 epochs), while ZHANG A.3 trains SimSiam without "
                "predictor, whose projector ends with the affine-free BN that de-centers z (ZHANG App. B).",
    "zhang-t3": "'Baseline (o_e and r_e) trains' fails on its kNN gain over random init: −1.01 points (95 % interval "
                "[−2.48, +0.46], 8 seeds; rule: above +1), with no complete collapse (margin 0.948 [0.945, 0.952]); "
                "'Removing r_e trains' is undecidable (gain +0.57 [−4.28, +5.41], 3 seeds, and with that spread 8 seeds "
                "would not decide it), and so, through the random-init gate, is 'removing r_e is better' (paired kNN "
                "difference +2.10 [−2.43, +6.63]; ZHANG: +11.2). 'Removing o_e collapses' holds (margin −0.74). Both "
                "triplet arms that ZHANG trains lose dimensions within 5 epochs and stay there (effective rank of clean "
                "z 4.1 and 5.5 of 256 at the end), and their kNN is flat from epoch 5 to 20 (baseline 71.2 → 71.6, "
                "removing r_e 71.8 → 72.9, random init 72.5). ZHANG's own triplet baseline is weak too (36.21 % against "
                "SimSiam's 66.62 %).",
    "zhang-t4": "'o_e ✓ r_e ✗ trains' is undecidable: its kNN gain over random init is +1.09 points (95 % interval "
                "[−0.01, +2.19], 5 seeds; rule: above +1), with no complete collapse (margin 0.960); and so, through the "
                "random-init gate, is 'keeping both is best' (both − o_e only +3.24 [1.98, 4.50], both − r_e only +0.25 "
                "[−0.63, +1.13]; rule: above −1 — both would hold). The other three arms are as ZHANG reports: both and "
                "r_e only train (gains +4.33 and +4.08), neither collapses on P (margin −0.96). ZHANG too finds o_e "
                "alone far weaker (48.08 % against 66.62 %); here its kNN rises 72.2 → 73.3 over the 20 epochs, against "
                "76.5 for both.",
}


def reading(exp_id: str, scale: str) -> str:
    """The reading of ``exp_id``'s runs at ``scale`` ("" when there is none)."""
    text = SMOKE.get(exp_id, "") if scale == SCALE else ""
    return f"Reading of the smoke runs of {DATE} (written after them; it decides nothing): {text}" if text else ""
