"""CENTER ("The common stability mechanism behind most SSL approaches"): 5 experiments.

Figs. 3–4 use the toy data of §3.2 (blobs and moons in 2-D, three classes; the samples of one class
are the views of one "image"; five seeds). Figs. 5–7 use ImageNet-100 with kNN accuracy. Every claim is
decided by its 95 % interval over seeds (:mod:`..stats`) and quotes CENTER; what holds by construction is a
sanity check (Fig. 3's "does not collapse": the objective penalizes the center norm itself; Fig. 5's "BN
removes the center": a train-mode BN zeroes the batch mean; Fig. 6's "does not collapse": Sinkhorn spreads
the assignments equally over the prototypes).
"""
from __future__ import annotations

from .. import measures
from .. import rules as R
from .common import (ACCURACY_NOTE, CENTER, CENTER_PAPER, COLLAPSE, KNN, NO_FINAL_BN, SEEDS, SMOKE_IMAGE_NOTE, SMOKE_TOY_NOTE,
                     STD, method, with_)
from ..gates import accuracy_gated, beats_random_init, by_seed, cap_of, per_run
from ..spec import Arm, Claim, Column, Experiment, Figure
from ..stats import Verdict, all_of, seed_test

PROTO_FACTOR = 2.0  # CENTER Fig. 6 "≈ 0": at most twice the center the K fixed prototypes have themselves
CENTER_HIGH = 0.9  # CENTER Fig. 4 "center vector is high" (collapse): see center_collapse
CENTER_PROJ = Column("center_proj", "‖center‖ of clean z (end)", 3)
TOY_SEEDS = {"tiny": 1, "smoke": 5, "paper": 5}  # CENTER §3.1–3.2: "Plots are averages of five runs with varying seeds"

TOY = ("blobs", "moons")
TOY_NOTES = {"smoke": SMOKE_TOY_NOTE + "lr 0.5, 100 epochs, no final BN in the projector. Accuracy: weighted kNN "
                      "(cosine) on held-out toy samples. On blobs (a 2-D input whose classes differ in angle) the random-"
                      "init network is already at the data's ceiling (the random-init row of the table), so the data "
                      "carries no information for an accuracy claim: accuracy is judged on moons, where the random-init "
                      "network stays clearly below what a classifier of the raw points reaches, so learning shows; blobs "
                      "still judges the collapse claims, by CENTER's indicator, the center norm. ",
             "tiny": "Plumbing check only.", "paper": "CENTER §3.2 toy data, five seeds."}
# Barlow Twins and BYOL train with LARS, their papers' optimizer (BRIDGE §5.1's base lr 0.3·B/256, weight decay
# 1.5e-6, 2 warm-up epochs; trust coefficient 0.02 for the short run): in calibration runs with the preset's SGD
# neither beat its random-init network within 20 epochs, with LARS both did.
LARS_SMOKE = {"optim": {"name": "lars", "lr": 0.3, "weight_decay": 1.5e-6, "warmup_epochs": 2}}
LARS_NOTE = ("Barlow Twins and BYOL train with LARS, their papers' optimizer (base lr 0.3·B/256 as BRIDGE §5.1, weight "
             "decay 1.5e-6, 2 warm-up epochs, trust coefficient 0.02): with the preset's SGD neither beat its random-init "
             "network in calibration runs. ")
IMAGE_NOTES = {"smoke": SMOKE_IMAGE_NOTE + ACCURACY_NOTE, "tiny": "Plumbing check only.",
               "paper": "CENTER §3: ImageNet-100 via data.name=image_folder (set data.root); the paper states neither "
                        "architecture nor schedule: ResNet-18 and 200 epochs are assumptions."}
# Calibrated on the toy data: with lr 0.5 and no final BN in the projector (CENTER does not describe its toy
# network), the variants CENTER Fig. 4 calls collapsing lose their spread within 40-100 epochs while SimSiam keeps it.
TOY_SCALES = {"smoke": {"optim": {"epochs": 100, "lr": 0.5}, "model": {"proj_final_bn": False}},
              "paper": {"optim": {"epochs": 200, "lr": 0.5}, "model": {"proj_final_bn": False}}}


def center_collapse(label: str, collapsed: bool, accuracy: str = "") -> callable:
    """CENTER's collapse criterion, its own indicator: the center vector s = E[z/‖z‖] takes the output. CENTER §1:
    "all images are projected onto a single point"; §2.1: "the larger the magnitude of the expected representation
    ... the smaller the magnitude of the residual representation"; Fig. 4: "Center vector is high for both the
    cases of collapse, i.e. SimSiam without predictor, and SimSiam without stop-gradient"; §5: "collapsed versions
    have higher center vector magnitudes but worse knn-classification performance compared to standard versions".

    "High": ‖s‖ (the end-of-training ``center`` = m_o) above CENTER_HIGH = 0.9. For unit vectors ‖s‖² plus the
    mean squared residual is 1, so ‖s‖ > 0.9 leaves the part that differs between samples less than 19 % of each
    output's squared norm — the center dominates (ZHANG §3.1: m_o ≫ m_r); a constant output has ‖s‖ = 1.
    ``collapsed``: the interval over seeds above 0.9 (the variant collapses); else below it (it does not), and with
    ``accuracy`` also a gain over the random-init network (ISSUE 19.3; not on blobs, where the random-init network
    is at the data's ceiling). The claim that the collapsing variants have a larger center than SimSiam follows
    from these two and is not counted again."""

    def rule(res) -> Verdict:
        why = res.missing([label], "center")
        if why:
            return Verdict(None, why)
        v = seed_test(list(by_seed(res, label, "center").values()), "above" if collapsed else "below", CENTER_HIGH,
                      cap=cap_of(res), quantity=f"‖center‖ = m_o of '{label}' (end of training)")
        return all_of([v, beats_random_init(res, label, accuracy)]) if accuracy and not collapsed else v

    return rule


def _toy_arms(variants: list) -> list:
    """One arm per (dataset, variant); labels 'variant (dataset)'."""
    return [Arm(f"{name} ({ds})", with_(over, {"data": {"name": ds}}), paper, group=ds) for ds in TOY for name, over, paper in variants]


def f3() -> Experiment:
    arms = [a for a in _toy_arms([("SimSiam", method("simsiam"), {}), ("Simplified objective", method("center", lambda_l=-1.0), {})])
            if a.label != "SimSiam (blobs)"]  # SimSiam is only an accuracy reference, and accuracy is judged on moons
    # Accuracy is judged on moons only: on blobs the random-init network is already at the data's ceiling (TOY_NOTES),
    # so the data carries no information for an accuracy claim there (issue 11: toy data only where it informs the
    # claim). CENTER §3.1: "our simplified objective without architectural complexity of SimSiam, is able to
    # outperform its performance" (Fig. 3; SPEC: "≥ SimSiam"): non-inferior by 0.5 points, paired by seed.
    # "Does not collapse" holds by construction: eq. 32 penalizes the center norm itself (a sanity check).
    claims = [Claim(f"The simplified objective (invariance + center penalty, eq. 32) is at least as good as SimSiam on {ds} "
                    "(paired kNN difference above −0.5 points)", [f"Simplified objective ({ds})", f"SimSiam ({ds})"],
                    R.at_least_best_of(f"Simplified objective ({ds})", [f"SimSiam ({ds})"], "knn", 0.5)) for ds in ("moons",)]
    claims += [Claim(f"The simplified objective does not collapse on {ds} (it penalizes the center norm directly)",
                     [f"Simplified objective ({ds})"], R.not_collapsed(f"Simplified objective ({ds})"), kind="sanity") for ds in TOY]
    figs = [Figure("curve", "knn_moons.png", "kNN top-1 on moons over training, 5 seeds (CENTER Fig. 3)",
                   {"measure": "knn", "arms": ["SimSiam (moons)", "Simplified objective (moons)"]}),
            Figure("curve", "center.png", "‖center‖ over training", {"measure": "center"})]
    return Experiment("center-f3", "CENTER", "Fig. 3, simplified objective", "toy blobs and moons, 5 seeds: ≥ SimSiam", arms, claims,
                      [KNN, CENTER, COLLAPSE], figures=figs, data_kind="vector", seeds=TOY_SEEDS,
                      scale_overrides=TOY_SCALES, notes=TOY_NOTES, smoke_minutes=2)


def f4() -> Experiment:
    variants = [("SimSiam", method("simsiam"), {"fails": "no", "center": "low"}),
                ("SimSiam w/o predictor", method("simsiam_nopred"), {"fails": "yes", "center": "high"}),
                ("SimSiam w/o stop-gradient", method("simsiam_nosg"), {"fails": "yes", "center": "high"})]
    arms = _toy_arms(variants)
    claims = []
    for ds in TOY:
        base = f"SimSiam ({ds})"
        gain = " and beats its random-init kNN" if ds == "moons" else ""
        claims.append(Claim(f"SimSiam does not collapse on {ds}: ‖center‖ < {CENTER_HIGH:g}{gain}", [base],
                            center_collapse(base, False, "knn" if ds == "moons" else "")))
        for v in ("SimSiam w/o predictor", "SimSiam w/o stop-gradient"):
            lab = f"{v} ({ds})"
            claims.append(Claim(f"{v} collapses on {ds}: its center vector takes the output, ‖center‖ > {CENTER_HIGH:g}", [lab],
                                center_collapse(lab, True)))
    figs = [Figure("curve", f"center_{ds}.png", f"‖center‖ on {ds} over training (CENTER Fig. 4)",
                   {"measure": "center", "ylabel": "‖center‖", "arms": [f"{v} ({ds})" for v, _, _ in variants]}) for ds in TOY]
    figs += [Figure("curve", f"knn_{ds}.png", f"kNN top-1 on {ds} over training", {"measure": "knn", "arms": [f"{v} ({ds})" for v, _, _ in variants]}) for ds in TOY]
    return Experiment("center-f4", "CENTER", "Fig. 4, toy collapse", "no predictor / no stop-grad: high center norm, collapse", arms, claims,
                      [CENTER, COLLAPSE, STD, KNN], figures=figs, data_kind="vector", seeds=TOY_SEEDS,
                      scale_overrides=TOY_SCALES, notes=TOY_NOTES, smoke_minutes=3)


def f5() -> Experiment:
    full, inv = "Barlow Twins", "Barlow Twins w/o off-diagonal"
    arms = [Arm(full, method("barlow"), {"fails": "no"}), Arm(inv, method("barlow", off_diagonal=False), {"fails": "no"})]
    return Experiment(
        "center-f5", "CENTER", "Fig. 5, BT without off-diagonal", "with BN: no collapse, lower kNN; BN removes the center", arms,
        # CENTER §3.3: "even without decorrelation-term, or in terms of InfoNCE equivalent, without any negative pairs,
        # Barlow-twins is able to avoid collapse, due to BN, although with suboptimal performance"; Fig. 5: "BN helps
        # in removing the center vector component from z". The final BN (affine-free, SimSiam's projector) holds z's
        # spread by construction, so "does not collapse" reads the effective rank and the gain over random init; the
        # BN's removal of the batch mean is its definition in training mode (a sanity check).
        [Claim("Without the off-diagonal term (BN kept), Barlow Twins trains without collapse", [inv], R.trains(inv)),
         Claim("... but its kNN accuracy is lower than full Barlow Twins' (paired)", [full, inv], R.greater(full, inv, "knn")),
         Claim("The final BN removes the center: ‖center‖ after BN < before BN, in both runs (a train-mode BN zeroes the "
               "batch mean)", [full, inv], R.each_greater([full, inv], "center_pre_bn", "center_post_bn"), kind="sanity")],
        [KNN, Column("center_pre_bn", "‖center‖ before BN", 3), Column("center_post_bn", "‖center‖ after BN", 3), COLLAPSE],
        figures=[Figure("curve", "knn.png", "kNN top-1 over training (CENTER Fig. 5a)", {"measure": "knn"}),
                 Figure("curve", "center_pre.png", "‖center‖ of z before the final BN (CENTER Fig. 5b)", {"measure": "center_pre_bn"}),
                 Figure("curve", "center_post.png", "‖center‖ of z after the final BN (CENTER Fig. 5c)", {"measure": "center_post_bn"})],
        seeds=SEEDS, scale_overrides={"smoke": LARS_SMOKE, "paper": CENTER_PAPER},
        notes={**IMAGE_NOTES, "smoke": IMAGE_NOTES["smoke"] + LARS_NOTE}, smoke_minutes=5)


def center_near_prototypes(label: str, factor: float = PROTO_FACTOR) -> callable:
    """CENTER §3.4: "when the prototypes are randomly and uniformly initialized on a unit hypersphere, i.e. the
    E[z] = 0 over the prototypes, the center vector magnitude is zero by design". K finite prototypes have a center
    of their own, ‖mean C‖ ≈ 1/√K (0.18 for K = 30, 0.058 for K = 300), and z assigned evenly over them inherits
    it; so "≈ 0" is read as: per run, the center of the clean test outputs z at the end, ‖mean z/‖z‖‖, minus
    ``factor`` × ‖mean C‖ of the run's own prototypes (the ``prototypes`` probe), its interval below 0."""

    def rule(res) -> Verdict:
        why = res.missing([label], "center_proj") or res.missing([label], "proto_center")
        if why:
            return Verdict(None, why)
        gaps = per_run(res, label, lambda c, b: c - factor * b, "center_proj", "proto_center")
        return seed_test(gaps, "below", 0.0, cap=cap_of(res),
                         quantity=f"‖center of clean z‖ − {factor:g} × ‖mean of the prototypes‖ of '{label}'")

    return rule


def f6() -> Experiment:
    learn, fixed = "SwAV (learnable prototypes)", "SwAV (fixed random prototypes)"
    small = {"method": {"params": {"num_prototypes": 30, "freeze_prototypes_steps": 0}}}
    # K = 300 prototypes (siamlab's default; SwAV uses 3000 for ImageNet), learnable ones frozen for the first epoch
    # (39 steps of the smoke subset), as the official code does for its first epoch (313 steps).
    one_epoch = {"method": {"params": {"freeze_prototypes_steps": 39}}}
    arms = [Arm(learn, with_(method("swav", prototypes="learnable"), NO_FINAL_BN), {"fails": "no"},
                scale_overrides={"tiny": small, "smoke": one_epoch}),
            Arm(fixed, with_(method("swav", prototypes="fixed"), NO_FINAL_BN), {"fails": "no", "center_proj": "≈ 0"},
                scale_overrides={"tiny": small})]
    return Experiment(
        "center-f6", "CENTER", "Fig. 6, SwAV fixed prototypes", "no collapse, center ≈ 0; learnable better", arms,
        # CENTER §3.4: "the center vector magnitude is zero by design, as an inductive bias, and hence collapse is
        # avoided. However, the manifold of the random initialized prototype space may not coincide with the natural
        # manifold of the data semantics, hence the performance of the learnable prototypes are better than fixed."
        # No collapse follows from Sinkhorn's equal assignment over the prototypes: a sanity check.
        [Claim("SwAV with fixed random prototypes does not collapse (Sinkhorn assigns equally over the prototypes)", [fixed],
               R.not_collapsed(fixed), kind="sanity"),
         Claim(f"Its center vector stays near zero: ‖center of clean z‖ ≤ {PROTO_FACTOR:g} × ‖mean of the fixed prototypes‖",
               [fixed], center_near_prototypes(fixed)),
         Claim("Learnable prototypes give a better kNN accuracy (paired)", [learn, fixed], R.greater(learn, fixed, "knn"))],
        [KNN, CENTER_PROJ, Column("proto_center", "‖mean of prototypes‖", 3), CENTER, COLLAPSE],
        figures=[Figure("curve", "center.png", "‖center‖ of training-batch z over training (CENTER Fig. 6)", {"measure": "center"}),
                 Figure("curve", "knn.png", "kNN top-1 over training", {"measure": "knn"})],
        probe="prototypes", seeds=SEEDS, scale_overrides={"paper": CENTER_PAPER}, notes=IMAGE_NOTES,
        smoke_minutes=4)


MOMENTA = {"tiny": [0.5, 0.99], "smoke": [0.5, 0.8, 0.95, 0.99], "paper": [0.9, 0.99, 0.996]}


def _momentum_arms(values: list) -> list:
    return [Arm(f"ε = {m:g}", with_(method("byol", momentum=m, cosine_schedule=False), NO_FINAL_BN), x=m) for m in values]


def momentum_trend(measure: str, sign: int, min_rho: float = 0.6, growth: bool = False) -> callable:
    """Per seed, Spearman ρ(ε, value) over the momentum arms, its interval over seeds against ∓min_rho (CENTER
    Fig. 7 shows one curve over ε). ``growth``: the value is the run's end-of-training measure minus its first
    logged one (CENTER §2.4 assumes the center starts at 0; this projector's does not, so the change from the start
    is what ε controls). Accuracy measures pass the random-init gate for every arm first."""

    def rule(res) -> Verdict:
        labels = res.labels()
        why = res.missing(labels, measure)
        if why:
            return Verdict(None, why)
        xs, rhos = [res.x(lab) for lab in labels], []
        values = {lab: {r.seed: (measures.value(r, measure), measures.value(r, measure + "_first")) for r in res.runs(lab)}
                  for lab in labels}
        for seed in sorted(set.intersection(*(set(v) for v in values.values()))):
            pairs = [values[lab][seed] for lab in labels]
            if any(end is None or (growth and start is None) for end, start in pairs):
                continue
            rho = R.spearman(xs, [end - start if growth else end for end, start in pairs])
            if rho is not None:
                rhos.append(rho)
        what = f"growth of {measure} from its first log" if growth else measure
        if not rhos:
            return Verdict(None, f"{what}: no seed with every arm and some spread")
        v = seed_test(rhos, "above" if sign > 0 else "below", min_rho if sign > 0 else -min_rho, cap=cap_of(res),
                      quantity=f"Spearman ρ(ε, {what}) over {len(labels)} momenta, per seed")
        return accuracy_gated(res, labels, measure, v)

    return rule


def f7() -> Experiment:
    arms_by_scale = {s: _momentum_arms(v) for s, v in MOMENTA.items()}
    return Experiment(
        "center-f7", "CENTER", "Fig. 7, BYOL momentum", "lower momentum: larger center, lower kNN", arms_by_scale["smoke"],
        # CENTER §3.5: "Figure 7 shows that lower momentum leads to higher center vector magnitudes, leading to
        # instability and low knn-accuracies, while higher momentum leads to vice-versa".
        [Claim("Lower EMA momentum lets the center norm grow more from its start (per-seed Spearman ρ(ε, growth) ≤ −0.6)", ["*"],
               momentum_trend("center", -1, growth=True)),
         Claim("Lower EMA momentum gives a lower kNN accuracy (per-seed Spearman ρ(ε, kNN) ≥ 0.6)", ["*"], momentum_trend("knn", +1))],
        [CENTER, Column("center_first", "‖center‖ (first log)", 3), KNN, COLLAPSE],
        figures=[Figure("sweep", "center.png", "‖center‖ against the EMA momentum ε (CENTER Fig. 7)", {"measure": "center", "xlabel": "ε"}),
                 Figure("sweep", "knn.png", "kNN top-1 against ε (CENTER Fig. 7)", {"measure": "knn", "xlabel": "ε"}),
                 Figure("curve", "center_curve.png", "‖center‖ over training", {"measure": "center"})],
        sweep="ε", arms_by_scale=arms_by_scale, seeds=SEEDS,
        scale_overrides={"smoke": LARS_SMOKE, "paper": CENTER_PAPER},
        notes={**IMAGE_NOTES, "smoke": IMAGE_NOTES["smoke"] + LARS_NOTE + "CENTER §2.4 assumes a random network's outputs are centered "
               "(E[z⁰] ≈ 0); this BYOL projector (FC-BN-ReLU-FC, no final BN, as in BYOL) starts with a large ‖center‖ (its first log is a column of the table), so the "
               "center claim reads the growth of ‖center‖ from the first logged step. 4 momenta: each seed gives one rank "
               "correlation over them, decided over the seeds."}, smoke_minutes=10)


EXPERIMENTS = [f3, f4, f5, f6, f7]
