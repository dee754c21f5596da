"""The shipped collapse atlases (``siamlab atlas NAME``): three grids chosen from the papers, each where a mechanism
they describe predicts an edge between collapse and training inside the smoke budget (20 epochs of 5,000
Fashion-MNIST images, a width-8 ConvNet, one seed per cell, at most 30 minutes of the runs' CPU time ÷ 2 cores).

``reason`` was written before the atlas ran, from the papers and a pilot of two cells at smoke scale (named in it);
``reading`` after, from its cells' numbers (atlas.json). Each projector ends without the final BN (as the catalogue's
collapse experiments, papers.common.NO_FINAL_BN) unless the reason says otherwise: an affine-free final BN keeps z
spread by construction, so complete collapse could not show.
"""
from __future__ import annotations

from .atlas import Atlas, Knob
from .papers.center import LARS_SMOKE
from .papers.common import NO_FINAL_BN, with_


def _knob(key: str, texts: str) -> Knob:
    from .atlas import parse_knob

    return parse_knob(f"{key}={texts}", "--x")


SIMSIAM_WD_LR = Atlas(
    "simsiam-wd-lr", "simsiam", _knob("optim.weight_decay", "0,5e-4,1e-3,2e-3,5e-3,1e-2"), _knob("optim.lr", "0.1,0.25,0.5,1"),
    base=NO_FINAL_BN, title="SimSiam: weight decay × learning rate",
    reason="GEN App. E.2 (eq. 49) writes SimSiam's dynamics per eigen-direction i of the representation's correlation "
           "with weight decay η: dλ_i = 2 r₂ λ_i [λ_p,i/‖z‖² (1 − c·λ̃_p,i + ε_i/λ_i) − η], so a direction grows only while "
           "the predictor's drive exceeds η, and a larger η kills more directions — dimensional collapse first, then "
           "complete; BRIDGE Thm 3.1 (W_pᵀW_p = FFᵀ + e^{−2ηt}C) makes the same η the rate at which the predictor locks "
           "onto the features. In continuous time the learning rate only sets the speed, so the edge should sit at a "
           "fixed weight decay once the budget is long enough, and move to larger η at small learning rates where 20 "
           "epochs are too few. Pilot (lr 0.5): weight decay 1e-2 collapses completely (kNN 10.3 %, chance), 5e-2 too, "
           "while the catalogue's 5e-4 trains (zhang-t2's SimSiam arm); the grid spans 0 … 1e-2. The η-scan of ZHANG "
           "Fig. 5a (η_p*, the share of −o_p in SimSiam's extra gradient) and the center norm are logged along the edge.",
    reading="The edge is a diagonal of the grid, at lr·η ≈ 1e-3 (base lr times weight decay): every cell with lr·η ≤ 5e-4 "
            "trains and every cell with lr·η ≥ 1e-3 has lost dimensions, except η 1e-2 at lr 0.1, whose effective rank is "
            "already falling (36.5 against 56–62 in its row); complete collapse appears only at η 1e-2 with lr ≥ 0.5 (kNN "
            "10 %, chance). Along a row the order is GEN App. E.2's — weight decay kills the weakest directions first (eq. "
            "49: a direction grows only while the predictor's drive exceeds η): at lr 0.5 the effective rank of clean z "
            "falls 36.6 → 8.7 → 1.06 → 1 for η 1e-3 → 2e-3 → 5e-3 → 1e-2 while √d·std of z stays 0.81–0.89 until the "
            "last cell, the output spread along one direction before it becomes one point. The reason's other prediction "
            "fails at this budget: the edge does not sit at a fixed η with lr setting only its speed; it moves with lr as "
            "the decay per step lr·η does, so what weight decay has had time to kill in 780 steps decides (whether it "
            "settles at a fixed η in a longer run is not tested here). ZHANG's two mechanisms part along the edge: "
            "de-centering survives — in the rank-1 cells ‖center‖ is 0.06–0.39 and the η-scan's η_p* −0.26 to −0.39, more "
            "negative than the healthy cells' −0.08 to −0.13 (ZHANG Fig. 5a: o_e ≈ η_p·o_p, η_p < 0 de-centers) — while "
            "de-correlation fails; the one cell where η_p* turns positive (+0.13, η 1e-2 at lr 0.25) is the rank-2 cell "
            "next to complete collapse, the sign ZHANG reads in the collapsing Mirror SimSiam. Weight decay helps until "
            "it kills dimensions: the best kNN gains sit just inside the edge (+5.1 points at η 1e-3, lr 0.25; +4.85 at "
            "η 1e-2, lr 0.1). RankMe and LiDAR of the projector follow the effective rank cell by cell (RankMe 56 → 1.0) "
            "and fall before kNN does (η 2e-3, lr 0.5: RankMe 9.5 while the kNN gain is still +0.6).")

BYOL_EMA_LR = Atlas(
    "byol-ema-lr", "byol", _knob("method.momentum", "0,0.5,0.8,0.9,0.95,0.99,0.995"), _knob("optim.lr", "0.1,0.3,1"),
    base=with_(NO_FINAL_BN, {"method": {"params": {"predictor": "identity", "cosine_schedule": False}}}),
    scale_overrides={"smoke": LARS_SMOKE, "tiny": LARS_SMOKE}, title="BYOL without predictor: EMA momentum × learning rate",
    reason="CENTER §2.4 (eqs. 26–28) writes BYOL's gradient as ε times the previous target's center plus a change "
           "z_bδ that is small while the target moves slowly, so a high momentum ε confines the output to its initial, "
           "centred distribution, and CENTER §3.5 / Fig. 7 reports larger centers and instability at lower momentum; ZHANG "
           "§2 (Table 1) finds a moving-average target alone prevents collapse without a predictor. Without the predictor "
           "(identity) the EMA is the only thing left, and at ε = 0 the method is SimSiam without predictor, which "
           "collapses (CENTER Fig. 4). The target lags the online network by about 1/(1 − ε) steps, and how far the "
           "online network moves in that time grows with the learning rate (LARS: a step is ∝ lr), so the edge should move "
           "to higher ε at higher learning rate if that lag is what matters. Pilot (lr 0.3): ε = 0 collapses (effective "
           "rank 1.1, kNN −18.8 points), ε = 0.99 trains (+4.4 points, rank 13.5); the grid spans ε 0 … 0.995 at three "
           "learning rates, momentum held fixed (no cosine schedule), LARS as the catalogue's BYOL (papers.center.LARS_SMOKE).",
    reading="The edge lies between ε = 0.95 and 0.99 at all three learning rates. ε ≤ 0.9 collapses completely (√d·std of "
            "z 0.0002–0.008 at the end, from 0.79 at the first step), ε = 0.95 collapses late (√d·std 0.14–0.16 a quarter "
            "into training, 0.04–0.06 at the end), ε ≥ 0.99 keeps z spread (0.22–0.35): without the predictor the EMA alone "
            "holds BYOL, as CENTER §2.4 says and as ZHANG's moving-average target does without a predictor (Table 1). The "
            "center norm ‖s‖ (m_o) grows from 0.60 at the first step in every cell, the less the higher ε — 1.000 for "
            "ε ≤ 0.9, 0.998–0.999 at 0.95, 0.95–0.97 at 0.99, 0.92–0.95 at 0.995 — CENTER Fig. 7's order, and where the "
            "output collapses it is the center that takes it (CENTER §2.1). The reason's guess fails: the learning rate "
            "does not move the edge, so the target's lag measured in how far the online network moves is not what "
            "decides; its lag in steps, 1/(1 − ε) ≈ 20 against 100, is. Accuracy and the verdict part at lr 1: the "
            "collapsed cells at ε 0.9 and 0.95 still gain +3.9 and +4.9 kNN points on the backbone (the projector's "
            "output collapses while the backbone keeps learning), and ε = 0.99 has the best kNN of the atlas (+5.9) while "
            "its effective rank 7.5 is below the verdict's K − 1 = 9 (dimensional collapse). RankMe of the projector "
            "separates the two sides (1.0–1.9 on collapsed cells, 4.1–10.3 on the others); LiDAR of the projector does "
            "not (16.6 and 15.6 on two completely collapsed cells at lr 0.1, 27.6–41.3 on the others). η_p* is ≈ 0 "
            "everywhere: with an identity predictor P is z, so o_e holds no share of o_p to measure.")

BARLOW_LAMBDA_DIM = Atlas(
    "barlow-lambda-dim", "barlow", _knob("method.lambd", "0,1e-5,1e-4,1e-3,5e-3,2e-2"), _knob("model.proj_out", "8,32,128,512"),
    scale_overrides={"smoke": LARS_SMOKE, "tiny": LARS_SMOKE}, title="Barlow Twins: off-diagonal weight λ × output dimension d",
    reason="CENTER §3.3 argues Barlow Twins avoids collapse through its BN (which removes the center) and is therefore "
           "robust to λ, and that without the off-diagonal term it still does not collapse, though it learns less "
           "(Fig. 5); the catalogue's center-f5 found that arm dimensionally collapsed at smoke (effective rank 1.5–1.9). "
           "GEN Table 1 / Theorem 3 (the bound's (K − d)/d² term) predicts accuracy holding for d ≥ 2K and dropping "
           "fast for d < K (K = 10 here). The off-diagonal sum has d(d − 1) terms, so its pull grows with d: the λ at which "
           "the output's dimensions spread should fall as d grows (Zbontar et al. suggest λ ≈ 1/d). The grid spans λ = 0 "
           "(the invariance term alone, BN kept: SimSiam's projector with its final BN, as center-f5) … 2e-2 and d = 8 "
           "(< K) … 512, LARS as the catalogue's Barlow Twins; no pilot beyond center-f5's two arms.",
    reading="No cell collapses completely: the final BN holds √d·std of z at 0.94–1.00 everywhere and ‖center‖ stays at "
            "0.16–0.30 with λ ≤ 1e-4 and falls to 0.03–0.10 at λ = 2e-2 — CENTER §3.3's reading, the BN removes the "
            "center whatever λ is. What λ decides is dimensions: with the invariance term alone (λ = 0) the output "
            "spans one direction at every d (effective rank 1.1–1.5), center-f5's finding over a whole row, and the edge "
            "to a spread output falls with d as the reason expected from the d(d − 1) off-diagonal terms — λ ≥ 5e-3 at "
            "d = 8 and 32, λ ≥ 1e-3 at d = 128 and 512. In λ·d the edge lies between 0.05 and 0.13 for d ≥ 32 (dimensional "
            "at 0.032, 0.013, 0.051; spread at 0.16, 0.13, 0.51), Zbontar et al.'s λ ≈ 1/d up to a constant; at d = 8 the "
            "verdict's own bar is lower (rank 4 rather than K − 1 = 9). Above the edge the output's effective rank grows "
            "with both knobs (7.1 at d = 8 → 74.7 at d = 512, both at λ = 2e-2). The backbone learns on both sides: the "
            "dimensionally collapsed cells still gain +2.3 to +6.1 kNN points for d ≤ 128, and only at d = 512 does the "
            "collapsed row fall to −1.1 … +3.4 while the spread cells reach the atlas's best, +7.35 (λ 5e-3). GEN Table "
            "1's drop for d < K does not show in the backbone (best gain per row +6.1, +6.1, +6.85, +7.35): GEN's "
            "accuracy is on the output f, which gen-t1 measures. RankMe of the projector is the effective rank again "
            "(within 0.1) and ranks the cells' kNN gain less well (Spearman +0.41 over the 24 cells) than "
            "RankMe or LiDAR of the backbone (+0.61, +0.62); LiDAR of the projector hardly at all (+0.20).")

ATLASES = {a.name: a for a in (SIMSIAM_WD_LR, BYOL_EMA_LR, BARLOW_LAMBDA_DIM)}
