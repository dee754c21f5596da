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
    "bridge-f3": "ΔW = W_p − W_p(0) of BYOL's linear predictor is not diagonal: its diagonal share is 0.089 (95 % "
                 "interval [0.070, 0.108], 3 seeds; rule: above 0.5), about what a random projection of the output's "
                 "rank gives (r/d ≈ 0.1 for an effective rank of 25–29 of 256), and its asymmetry 0.640 [0.613, 0.667] "
                 "(rule: below 0.5; i.i.d. entries: √2). The scale curve (×1, ×2, ×4: 20, 40, 80 epochs; 3, 3, 2 seeds) "
                 "moves the asymmetry toward BRIDGE's symmetric W_p — 0.640 → 0.599 [0.594, 0.604] → 0.508 [0.493, "
                 "0.523], undecidable at ×4 — while the diagonal share creeps up, 0.089 → 0.119 → 0.144 [0.041, 0.247] "
                 "(intervals overlap: 'none'); at 0.03 per doubling it would need about twelve more doublings, beyond any "
                 "CPU budget, to pass 0.5 (BRIDGE: ≈ 62,000 steps against 780 × 4 here). The eigenvalue claim holds at "
                 "every budget (0.96), mainly through the cluster at 0. The deviation chosen from BRIDGE's text before "
                 "its run (docs/curves.md: BYOL's own projector ÷ 8, 512-32, an output no wider than the features) does "
                 "not show the mechanism sooner: diagonal share 0.322 [0.275, 0.369] at d = 32 with effective rank "
                 "≈ 10, again r/d, and asymmetry 0.805 [0.804, 0.806].",
    "center-f7": "'Lower EMA momentum lets the center grow more' fails, in the opposite order: the center does not "
                 "grow at any ε but falls from 0.594 at the first log to 0.368 (ε = 0.5), 0.412 (0.8), 0.419 (0.95) "
                 "and 0.423 (0.99; means of 5 seeds), lower momentum shrinking it most, so the per-seed Spearman ρ(ε, "
                 "growth) is +0.76 (95 % interval [+0.49, +1.03]; rule: below −0.6). kNN is 75.5–76.0 at every ε and no "
                 "run is unstable: ρ(ε, kNN) +0.26 [−0.28, +0.80] is undecidable (rule: above +0.6; 8 seeds would not "
                 "decide it). These BYOL arms keep their MLP predictor; the byol-ema-lr atlas, BYOL without predictor, "
                 "shows CENTER's order — the center grows the more the lower ε, and ε ≤ 0.95 collapses — so with the "
                 "predictor BYOL removes the center at every momentum within 20 epochs. CENTER §3.5 reads its Fig. 7 "
                 "over long training; a scale curve (about 40 CPU-minutes at ×2) was not run for lack of time.",
    "center-f5": "'Without the off-diagonal term (BN kept), Barlow Twins trains without collapse' fails on dimensions: "
                 "the effective rank of clean z is 1.51 (95 % interval [1.42, 1.60], 8 seeds; rule: above 2, a single "
                 "direction being collapse) while the affine-free BN holds √d·std at 0.97–0.99 by construction, and its "
                 "kNN gain over random init is −0.21 [−2.10, +1.67]. CENTER Fig. 5 reads its own indicator, the center, "
                 "which the BN does remove (the sanity check: ‖center‖ before BN − after BN +0.11 [+0.03, +0.19]): no "
                 "complete collapse, as here; the output nevertheless lies along one direction. The barlow-lambda-dim "
                 "atlas shows the same over a whole row — at λ = 0 the rank is 1.1–1.5 for d = 8 … 512, the backbone "
                 "still gaining at small d (+4.9 points at d = 8) and not at d = 512 (−1.1) — and the spread appearing "
                 "only once λ·d passes about 0.05–0.13. No scale curve was run: nothing in the invariance term spreads "
                 "dimensions, and within the run the rank drops from 38–42 at random init to 1.6 by epoch 5 and stays "
                 "there (1.35–1.6 at epochs 10–20, seeds 0 and 5). 'Lower kNN than full Barlow Twins' would hold "
                 "(paired +5.01 [+3.08, +6.95]) but is not judged: the arm does not beat its random-init network.",
    "center-f6": "'Learnable prototypes give a better kNN' is undecidable. The learnable arm gains +6.2, +6.8 and +3.0 "
                 "points over its random-init networks (mean +5.3, 95 % interval [+0.31, +10.3], 3 seeds: with two "
                 "degrees of freedom the interval reaches below the gate's 1 point), so the comparison is not made; it "
                 "would stay open anyway — learnable − fixed +0.67 (95 % interval [−1.56, +2.90]; by seed +1.3, +1.0, −0.4; rule: "
                 "above 0), and with "
                 "that spread 8 seeds would not decide it. Fixed random prototypes train as well as CENTER says: no "
                 "collapse, center near zero (the counted claim holds), kNN 76.8–77.5 over 5 seeds. Caron et al., whom "
                 "CENTER §3.4 cites, find fixed prototypes 'comparable to learnable' ones; the difference CENTER reads "
                 "into Fig. 6 is within the seed spread here.",
    "gen-f4": "Both trajectory claims are undecidable. In both arms GEN's bound falls over training (change after "
              "burn-in −0.097 [−0.126, −0.068] for Barlow Twins, −0.14 [−0.18, −0.10] for the linear SimSiam; rule: "
              "below 0), as GEN Fig. 4 shows; what stays open is the accuracy side. kNN on the output f gains +3.43 "
              "(95 % interval [−0.27, +7.13], 5 seeds; rule: above +1) for Barlow Twins — +1.5, +3.5, +1.4, +8.6, +2.2 "
              "by seed, against random-init networks whose kNN on f ranges 61.4–67.3 — and −0.83 [−4.48, +2.81] for "
              "the linear SimSiam, so the correlation is not judged; it would be undecidable anyway (Barlow Twins r = "
              "−0.65 [−1.20, −0.11], linear SimSiam −0.60 [−1.80, +0.59]; rule: below −0.5; 8 seeds would not "
              "decide either). GEN trains 600–800 epochs; a scale curve (≈ 27 CPU-minutes at ×2) was not run for "
              "lack of time.",
    "gen-f5": "'Λ close to identity' fails: the mean |off-diagonal| of the trained features' correlation matrix is "
              "0.342 (95 % interval [0.330, 0.353], 3 seeds; rule: below 0.1), though it is below the random-init "
              "network's (−0.261 [−0.285, −0.238]). The scale curve (×1, ×2, ×4: 20, 40, 80 epochs; 3, 3 and 2 "
              "seeds) shows no move toward the identity: 0.342 → 0.295 [0.288, 0.301] → 0.327 [0.076, 0.577] (the "
              "two ×4 seeds disagree), 'none' by the trend rule and undecidable at ×4. Longer training concentrates "
              "the output instead of spreading it: the effective rank of clean z falls 40.6 → 35.4 → 18.0 (means over "
              "seeds) while kNN rises and levels off (76.2 → 78.3 → 78.3). GEN App. E.3 (Fig. 5) shows its near-"
              "identity Λ for SimSiam with 2048 output dimensions after 600 epochs; up to 80 epochs of this d = 256 "
              "network, Λ does not move toward it.",
    "zhang-t1": "'The moving-average target trains' fails on its kNN gain over random init: −5.31 points (95 % interval "
                "[−8.40, −2.22], 5 seeds; rule: above +1): training lowers kNN from 72.2 to 66.9; its collapse margin "
                "−0.047 [−0.120, +0.026] sits on the complete-collapse threshold (√d·std 0.091; 4 of 5 runs' verdicts "
                "say collapsed). Both same-batch arms collapse as in ZHANG (margins −0.51 and −0.52). No scale curve: "
                "the failing arm already moves away from ZHANG's value inside its runs — √d·std of clean z 0.099 at "
                "epoch 5 and 0.093 at epoch 10 (mean of 5 seeds), kNN 66.7 and 66.9 — so more steps of this setting "
                "cannot lift it. The setting differs from ZHANG's: the smoke projector has no final BN (the deviation "
                "that lets the same-batch arms collapse within 10 epochs), while ZHANG A.3 trains SimSiam without "
                "predictor, whose projector ends with the affine-free BN that de-centers z (ZHANG App. B).",
    "zhang-t2": "'Symmetric Predictor collapses' fails: its collapse margin stays far above 0 (+0.809 decades, 95 % "
                "interval [0.789, 0.830], 3 seeds; rule: below 0): √d·std of clean z is 0.71–0.73 after 10 epochs and "
                "its kNN rises over its random-init network (73.7–75.8 against 71.2–73.8). The scale curve (×1, ×2: "
                "10 and 20 epochs, 3 seeds each) moves it toward collapse, but by directions, not to a point: the margin "
                "falls only to +0.777 [0.772, 0.782] (√d·std 0.67–0.70) while the effective rank of clean z falls 8.1 → "
                "5.4 (mean of 3 seeds) and every ×2 run ends dimensionally collapsed with kNN 75.0–77.8; at 0.03 decades "
                "per doubling no CPU budget reaches ZHANG's constant output (1000 epochs, A.1). 'SimSiam trains' is "
                "undecidable at ×1 — its gain over random init is +1.32 [−1.05, +3.69] (rule: above +1; 8 seeds would "
                "not decide it) — and grows with training, +3.63 [−0.10, +7.36] at ×2, where it is still undecidable "
                "(the seeds' random-init networks differ by 2.6 points). Mirror and Naive Siamese collapse at both "
                "budgets, further at ×2 (margins −0.63 → −0.87 and −0.70 → −0.87).",
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
                "76.5 for both. The scale curve (×1, ×2: 20 and 40 epochs; 5 and 3 seeds) lifts the o_e-only gain to "
                "+2.87 [+0.78, +4.95] — rising, but the intervals overlap ('none'), and at ×2 the claim is still "
                "undecidable, now for want of seeds (3; none are added at a curve's largest budget). At ×2 every arm "
                "keeps its ×1 behaviour: r_e only trains, neither collapses further (margin −0.96 → −1.52), and 'both "
                "is best' is +3.13 [−0.28, +6.55] over 3 seeds.",
    "zhang-f5a": "Mirror SimSiam's η_z* fails: +0.059 (95 % interval [+0.040, +0.078], 5 seeds) against the rule's "
                 "band [0.1, 0.4], written from ZHANG's ≈ +0.2 — ZHANG's sign, a third of its size. Mirror collapses within the "
                 "budget onto 1.3–1.6 directions (√d·std 0.13–0.42, kNN 44.5–69.5 % against 71–74 % at random init; "
                 "zhang-t2's curve shows it collapsing further with more steps), and on an output that has lost its "
                 "directions the scan of o_e against o_z has little left to measure; ZHANG does not say at which point "
                 "of training its value was read. SimSiam's η_p* is −0.223 [−0.275, −0.170] (5 seeds): ZHANG's sign and "
                 "about half its ≈ −0.5; the interval straddles the band's edge at −0.25, so the claim is undecidable, "
                 "and with that spread 8 seeds would not decide it. This reading names no training length as the "
                 "cause, and no scale curve was run.",
    "zhang-f5b": "The premise holds and the claim fails. The collapsing phase (ZHANG eq. 1) drives m_r from 0.965 to "
                 "0.014 (ratio 0.015, 95 % interval [0.012, 0.018], 3 seeds); the de-correlation loss of ZHANG A.6 "
                 "(Algorithm 6: squared off-diagonal covariance of the mean-centred output) then regains 0.00026 "
                 "[0.00014, 0.00037] of the drop within 195 steps (rule: above 0.5), and m_r is still 0.011–0.014 at the "
                 "end of the run. That loss's gradient is the covariance times the centred output, cubic in the "
                 "residuals, so on residuals shrunk about 70-fold it is some 70³ ≈ 3 × 10⁵ times weaker than on a healthy "
                 "output: nothing in a longer phase would lift it, and no scale curve was run. The smoke projector has no "
                 "final BN (the deviation that lets the collapsing phase collapse within the budget); ZHANG's encoder "
                 "keeps it, which holds every dimension's batch variance up and so keeps residuals for the de-"
                 "correlation loss to act on.",
    "zhang-t5": "No predictor collapses (collapse margins 0.96–1.00 decades above the threshold), and the non-linear "
                "MLP and Tanh(FC) predictors train (5 seeds each). FC+FC+Bias and Bias are undecidable on their kNN "
                "gain over random init, +2.53 (95 % interval [−2.04, +7.11]) and +1.78 [−1.13, +4.69] with 3 seeds "
                "(rule: above +1; 8 seeds would decide neither): both gain 2–4 points on seeds 0 and 1 and +0.5 on "
                "seed 2, whose random-init network is 2 points better than the others' (73.8). So the two comparisons "
                "gated on them are not judged; their numbers: MLP − FC+FC+Bias +1.38 [−0.85, +3.62] (rule: inside "
                "±2), FC+FC+Bias − Tanh(FC) −1.18 [−1.37, −0.99] — ZHANG's order FC+FC+Bias > Tanh(FC) would fail if "
                "it were judged. The Bias predictor's output keeps about six directions (effective rank 5.9 against "
                "40 for the MLP), shown in its own column. No scale curve was run.",
    "zhang-t6": "The MLP's last bias does not align with the center: the cosine of its learned part b − b₀ with the "
                "center of z is 0.203 (95 % interval [0.099, 0.308], 3 seeds; rule: above 0.7, from ZHANG's 0.89), the "
                "whole bias 0.50, still holding much of its random initialization (cos(b, b₀) 0.43). The single bias "
                "(after an l2-normalized input) comes closer, 0.847 [0.423, 1.27] — undecidable against > 0.9 (ZHANG: "
                "0.99), and with that spread 8 seeds would not decide it. The scale curve (×1, ×2: 20 and 40 epochs, "
                "3 seeds) moves neither beyond seed noise: the single bias 0.847 → 0.919 [0.608, 1.23] (undecidable at "
                "×2), the MLP's last bias 0.203 → 0.118 [−0.052, +0.287] (not reproduced at ×2). The single-bias arm's "
                "output loses directions as it trains (effective rank 5.9 → 4.3) while its kNN stays 0.4–4.7 points above "
                "random init. ZHANG reads both cosines after 1000 epochs with weight decay.",
    "zhang-f6": "Three claims hold — SimSiam and InfoNCE lower the covariance after their first epochs, and InfoNCE "
                "without r_e ends higher (paired +0.00187, 95 % interval [+0.00173, +0.00202], 3 seeds) — and 'without "
                "r_e, InfoNCE loses accuracy' is undecidable through the random-init gate: the arm's kNN gain over its "
                "random-init network is −0.23 [−8.79, +8.32] (+0.9, +2.6, −4.1 by seed; rule: above +1), so the paired "
                "comparison, InfoNCE − InfoNCE without r_e = +5.9 [+0.83, +11.0], which would hold, is not judged; with "
                "that spread 8 seeds would not open the gate. Without r_e the output keeps about three directions "
                "(effective rank 3.2–3.3 against 46–47 for InfoNCE): the loss of de-correlation ZHANG §3.5 ascribes to "
                "removing r_e shows as dimensional collapse, and the accuracy it costs as a network no better than its "
                "random init. This reading names no training length; no scale curve was run.",
    "zhang-f9": "Both claims are undecidable. 'BN + MSE trains without collapse' reads the effective rank of clean z "
                "(its affine-free final BN holds √d·std at 0.98–0.99 by construction): 2.09 (95 % interval [1.59, 2.59], "
                "3 seeds; rule: above 2, ZHANG Conjecture 2's single dimension) — 2.19, 1.85, 2.22 by seed, against "
                "39–43 for SimSiam — and its kNN gain over random init is +1.75 [−2.29, +5.79] (rule: above +1); with "
                "that spread 8 seeds would decide neither. The paired comparison 'below SimSiam' (SimSiam − BN + MSE "
                "+2.17 [−0.83, +5.16]) waits on BN + MSE's gain (the random-init gate). ZHANG (App. B, Fig. 9) puts BN + "
                "MSE's lower accuracy down to its lacking SimSiam's de-correlation; here that shows as an output spread "
                "over about two directions, one more than the single dimension ZHANG's Conjecture 2 calls collapsed "
                "('equivalent to having a single dimension').",
}


def reading(exp_id: str, scale: str) -> str:
    """The reading of ``exp_id``'s runs at ``scale`` ("" when there is none)."""
    text = SMOKE.get(exp_id, "") if scale == SCALE else ""
    return f"Reading of the smoke runs of {DATE} (written after them; it decides nothing): {text}" if text else ""
