"""What the smoke runs showed where a claim did not reproduce or could not be decided: the scale argument
and its evidence, per experiment.

This is a reading of recorded runs, not a rule: it decides nothing (the verdicts come from the claims'
rules, written before the runs) and it is shown only beside results of the scale it was written for.
Every number below was read from the smoke runs of 2026-11-30 (`siamlab reproduce ID --scale smoke`,
the 2-core development CPU, one thread per run; their results.json / report.html). A rerun on another
machine can differ in the last digits; where the table of a new run disagrees with a number here, the
table is right and this reading is out of date.
"""
from __future__ import annotations

SCALE = "smoke"
DATE = "2026-11-30"

SMOKE = {
    "zhang-t1": "The same-batch EOA arms collapse as in ZHANG. The moving-average arm collapses too (√d·std(Z) 0.089 "
                "after 10 epochs, 0.069 after 20): at smoke scale the projector has no final BN (the deviation that lets "
                "the collapsing arms collapse within the budget), while ZHANG's moving-average arm had A.1's projector "
                "with its final BN, which de-centers z (ZHANG App. B).",
    "zhang-t2": "Symmetric Predictor (Alg. 4) neither collapses nor learns in 20 epochs: √d·std 0.74 on z and 0.67 on P, "
                "kNN 73.5 % = its random-init network's. ZHANG's collapse of this architecture is over 1000 epochs; the "
                "three other rows hold.",
    "zhang-t3": "The baseline and 'Removing r_e' arms meet ZHANG's own indicators (√d·std 0.89 ≈ Std 0.020 at d = 2048, "
                "m_r 0.999) but their clean projector features span effective rank 4.0–6.7 (the verdict needs K − 1 = 9), "
                "so the 'trains' rule — written to fail on dimensional collapse too — fails them, and both sit at or below "
                "the random-init kNN, which leaves the accuracy claim undecidable. ZHANG's own triplet baseline is weak as "
                "well (36.21 % vs SimSiam's 66.62 %).",
    "zhang-t5": "The Bias predictor collapses dimensionally (effective rank 5–6 of 256; kNN gain +0.57 over random init) "
                "and FC+FC+Bias ends 2.1 points below the MLP predictor over 3 seeds (74.8 vs 76.9, rule: within 2); the "
                "other predictors train.",
    "zhang-t6": "Judged on the learned part of the bias (b − b₀): the single bias aligns with the center in two seeds "
                "(0.99, 0.95) and not in the third (−0.17), mean 0.59 against 0.9; the MLP's last bias reaches 0.20–0.28 "
                "(the whole bias 0.41–0.64, still holding its random initialization: cos(b, b₀) ≈ 0.32). ZHANG's "
                "values come after 1000 epochs with weight decay.",
    "zhang-f5a": "SimSiam's η_p* is −0.225 ± 0.027 at the end of training: the paper's sign, just outside the band "
                 "[−1, −0.25] written from its ≈ −0.5. Mirror SimSiam collapses within the budget (two seeds "
                 "dimensionally, η_z* ≈ +0.04; one completely, η_z* ≈ −1), and on a collapsed Z the η-scan of o_e is "
                 "degenerate; ZHANG does not say at which point of training its ≈ +0.2 was read.",
    "zhang-f5b": "With the BN-free projector the collapse phase drives m_r from 0.967 to 0.014, and the unweighted A.6 "
                 "de-correlation loss has almost no gradient on so collapsed a Z (its gradient is cubic in the residuals): "
                 "m_r stays at 0.014. With ZHANG's BN projector the collapse phase only lowers m_r from 0.989 to 0.714 "
                 "(the premise fails) and the de-correlation phase lifts it to 0.764.",
    "zhang-f5c": "cos(r_e, −∇decor) rises steadily with τ (0.923, 0.924, 0.951, 0.988, 0.996 for τ = 0.05 … 1): to first "
                 "order in 1/τ, r_e is proportional to C·Z_a, the de-correlation gradient itself, so a cosine approaching 1 "
                 "at large τ is what the algebra predicts; the peak ZHANG reports near τ 0.1–0.2 does not appear here. "
                 "cos(o_e, ·) stays below it at every τ, as ZHANG reports.",
    "zhang-f6": "SimSiam and InfoNCE lower the covariance after their peak and InfoNCE without r_e ends higher, as in "
                "ZHANG; InfoNCE without r_e ends below its random-init network (−1.02 kNN over 3 seeds), so whether it "
                "'loses accuracy' is undecidable at this scale.",
    "zhang-f7": "The covariance is U-shaped in τ (8e-4, 3e-4, 2e-4, 4e-4, 6e-4 for τ = 0.05 … 1; Spearman −0.10), not "
                "rising; accuracy does fall at the highest τ, as ZHANG reports. The entropy claim is a sanity check.",
    "zhang-f9": "BN + MSE does not collapse completely but its clean projector features span effective rank 2.0–2.3 of "
                "256 and its kNN gains only +0.67 over random init, so the 'trains' rule (dimensional collapse counts) "
                "fails and the accuracy comparison with SimSiam is undecidable.",
    "center-f5": "Barlow Twins without the off-diagonal term keeps the BN (no complete collapse) and the BN removes the "
                 "center, as CENTER says; its features span effective rank 1.5–1.9 and its kNN gains −0.12 over random "
                 "init, so 'lower accuracy than full Barlow Twins' is undecidable.",
    "center-f7": "The center falls in all 12 runs (0.59 → 0.36–0.41) and no run becomes unstable: Spearman ρ(ε, growth) "
                 "= +0.45 and ρ(ε, kNN) = −0.41. At epoch 5 the slowest EMA (ε = 0.99) lags (71.4 vs 73.0 for ε = 0.5): "
                 "in 780 steps a slow target mostly slows learning; the instability CENTER describes at low momentum "
                 "belongs to long training.",
    "gen-t1": "Accuracy here is kNN on the d-dimensional output f. Barlow Twins at d = 32 gains −0.12 and the simplified "
              "SimSiam gains at most +0.47 (d = 16) over its random-init network at d ≥ 16, so the slopes GEN compares "
              "cannot be decided at 20 epochs (GEN: 600–800).",
    "gen-f3": "Same runs as gen-t1: the arms whose L_bound and kNN on f would be correlated do not beat their random-init "
              "networks, so the correlation is undecidable.",
    "gen-f4": "Barlow Twins holds (r = −0.94 between L_bound and kNN on f over training); the simplified SimSiam at d = 64 "
              "ends 1.0 point below its random-init network, so its trajectory claim is undecidable.",
    "gen-f5": "Mean |off-diagonal| of the correlation matrix Λ is 0.37 at the end (0.60 at random init; rule < 0.1). It "
              "is still moving: ‖Σ − I‖²/d falls 79.8 → 56.8 and the effective rank rises 22.9 → 37.4 over the 20 "
              "epochs, against GEN's 600.",
    "bridge-f3": "The learned part ΔW = W_p − W_p(0) is moving towards BRIDGE's cI (its diagonal share rose 0.004 → 0.027 "
                 "and its asymmetry fell 1.40 → 1.16 during the run; at the end asymmetry 0.63 vs < 0.5, diagonal share "
                 "0.092 vs > 0.5) over 780 steps, against ≈ 62,000 in the paper. The eigenvalue claim holds, but mainly "
                 "through its zero cluster (15 of 256 eigenvalues above 0.3 × the largest).",
    "bridge-t1": "After 20 epochs effective rank tracks accuracy: the c_inv = 25 configurations sit at rank 6–9 "
                 "(dimensionally collapsed) while (k = 1, c_inv = 1, c_cov = 25) sits at 33–36 and is best (78.05, 3 "
                 "seeds). Partitioning helps and (25, 1) beats (25, 25) at k = 8, as BRIDGE reports.",
    "bridge-t2": "Over 3 seeds the projector sizes (widths ÷ 8 at smoke: 512-32, 256-256-256, 1024-1024-1024) end within "
                 "2.4 kNN points of each other, 74.0–76.4 against 73.1 at random init, where BRIDGE Table 2 spreads them "
                 "over 14 points. At k = 1 the narrow 512-32 projector ties the deep one (76.4 ± 0.9 vs 76.2 ± 0.7: not "
                 "reproduced); at k = 32, c_inv = 10 the narrow one gains +0.98 over random init (needs > 1), so that "
                 "comparison is undecidable; the widest projector beats the (k = 32, 25/1) one, 76.0 vs 74.1, as BRIDGE "
                 "reports. With a 64-d width-8 ConvNet backbone, 5,000 images and 20 epochs, the projector's size is not "
                 "what limits the representation here.",
    "bridge-t3": "Three cells BRIDGE trains (STD without the covariance term: Cov = 0 + STD, + I-PRED, + StopGrad) collapse "
                 "dimensionally here (effective rank 1.3–2.9); BRIDGE §4.2 itself expects 'the space of f can be "
                 "degenerate' there, and under a complete-collapse reading they would pass. 'Cov = 1' (no STD) shrinks its "
                 "output towards zero — mean ‖z‖ 0.57 → 0.04, per-dimension std 0.003, kNN 56 % against 73 % at random "
                 "init — the collapse BRIDGE §4.2 names ('the projector always outputs zero'), but its directions stay "
                 "spread (effective rank 105) and the collapse verdict, which reads directions, does not count a shrinking "
                 "scale (a known limit of the verdict). Cov = 1 + STD ends 2.2 points below StopGrad (76.2 vs 78.4, 1 seed).",
    "bridge-t4": "BRIDGE's effective rank rises slowly — 5.9 at epoch 5, 7.0 at epoch 20, 8.8 in a 40-epoch probe run — "
                 "towards the K − 1 = 9 the verdict requires, so at 20 epochs it counts as dimensionally collapsed; its "
                 "accuracy is comparable to SimSiam, Barlow Twins and VICReg, as BRIDGE reports.",
}


def reading(exp_id: str, scale: str) -> str:
    """The reading of ``exp_id``'s runs at ``scale`` ("" when there is none)."""
    text = SMOKE.get(exp_id, "") if scale == SCALE else ""
    return f"Reading of the smoke runs of {DATE} (written after them; it decides nothing): {text}" if text else ""
