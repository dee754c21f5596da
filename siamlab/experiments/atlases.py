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
           "Fig. 5a (η_p*, the share of −o_p in SimSiam's extra gradient) and the center norm are logged along the edge.")

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
           "learning rates, momentum held fixed (no cosine schedule), LARS as the catalogue's BYOL (papers.center.LARS_SMOKE).")

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
           "(< K) … 512, LARS as the catalogue's Barlow Twins; no pilot beyond center-f5's two arms.")

ATLASES = {a.name: a for a in (SIMSIAM_WD_LR, BYOL_EMA_LR, BARLOW_LAMBDA_DIM)}
