"""CENTER ("The common stability mechanism behind most SSL approaches"): 5 experiments.

Figs. 3–4 use the toy data of §3.2 (blobs and moons in 2-D, three classes; the samples of one class
are the views of one "image"; five seeds). Figs. 5–7 use ImageNet-100 with kNN accuracy.
"""
from __future__ import annotations

from .. import measures
from .. import rules as R
from .common import (ACCURACY_NOTE, CENTER, CENTER_PAPER, COLLAPSE, KNN, NO_FINAL_BN, SMOKE_IMAGE_NOTE, SMOKE_TOY_NOTE, STD,
                     method, with_)
from ..gates import MIN_SEEDS, UNDECIDABLE, gates, random_init_gate
from ..spec import Arm, Claim, Column, Experiment, Figure

PROTO_FACTOR = 2.0  # CENTER Fig. 6 "≈ 0": at most twice the center the K fixed prototypes have themselves
CENTER_PROJ = Column("center_proj", "‖center‖ of clean z (end)", 3)
ERANK = Column("erank", "effective rank of clean z", 1)

TOY = ("blobs", "moons")
TOY_NOTES = {"smoke": SMOKE_TOY_NOTE + "lr 0.5, 100 epochs, no final BN in the projector. Accuracy: weighted kNN "
                      "(cosine) on held-out toy samples. On blobs the random-init network already scores 99.6 % (a 2-D "
                      "input whose classes differ in angle), so the data carries no information for an accuracy claim: "
                      "Fig. 3's accuracy claim is judged on moons, where the random-init network's cosine kNN is 83.5 % "
                      "against a ceiling of about 96 % (RBF-SVM 95.8 %, Euclidean 20-NN 94.8 % on the raw points), so "
                      "learning shows; blobs still judges the collapse claims. ", "tiny": "Plumbing check only.",
             "paper": "CENTER §3.2 toy data, five seeds."}
# Barlow Twins and BYOL train with LARS, their papers' optimizer (BRIDGE §5.1's base lr 0.3·B/256, weight decay
# 1.5e-6, 2 warm-up epochs; trust coefficient 0.02 for the short run). Calibration (seed 0, 20 epochs, backbone kNN,
# random init 73.5 %): with the preset's SGD neither beat the random-init network (Barlow Twins 70.1 % at lr 0.5 and
# 71.2 % at lr 0.05, BYOL ε = 0.99 68.3 %); with LARS Barlow Twins reached 77.2 % and BYOL 76.2 % (ε = 0.99).
LARS_SMOKE = {"optim": {"name": "lars", "lr": 0.3, "weight_decay": 1.5e-6, "warmup_epochs": 2}}
LARS_NOTE = ("Barlow Twins and BYOL train with LARS, their papers' optimizer (base lr 0.3·B/256 as BRIDGE §5.1, weight "
             "decay 1.5e-6, 2 warm-up epochs, trust coefficient 0.02): with the preset's SGD neither beat the random-init "
             "network in calibration (Barlow Twins 70.1 %, BYOL 68.3 %, against 73.5 %). ")
IMAGE_NOTES = {"smoke": SMOKE_IMAGE_NOTE + ACCURACY_NOTE, "tiny": "Plumbing check only.",
               "paper": "CENTER §3: ImageNet-100 via data.name=image_folder (set data.root); the paper states neither "
                        "architecture nor schedule: ResNet-18 and 200 epochs are assumptions."}
# Calibrated on the toy data: with lr 0.5 and no final BN in the projector (CENTER does not describe its toy
# network), the variants CENTER Fig. 4 calls collapsing lose their spread within 40-100 epochs while SimSiam keeps it.
TOY_SCALES = {"smoke": {"optim": {"epochs": 100, "lr": 0.5}, "model": {"proj_final_bn": False}},
              "paper": {"optim": {"epochs": 200, "lr": 0.5}, "model": {"proj_final_bn": False}}}


def no_complete_collapse(label: str) -> callable:
    """CENTER's collapse is complete collapse: "all images are projected onto a single point", the center
    vector taking the whole norm (§1, §2.1). Neither that (nor a collapse of P, nor divergence) in most
    seeds; a dimensional collapse is reported in the explanation but is not what CENTER's claims are about."""

    def rule(res):
        why = res.missing([label], "fails")
        if why:
            return None, why
        fails, dims = res.values(label, "fails"), res.values(label, "dim_collapse")
        dim_text = f"dimensional collapse in {sum(dims):.0f}/{len(dims)}" if dims else "dimensional collapse not measured"
        return sum(fails) < len(fails) / 2, (f"'{label}' collapsed completely or diverged in {sum(fails):.0f}/{len(fails)} seeds "
                                             f"({dim_text}, reported, not judged); rule: fewer than half")

    return rule


def _toy_arms(variants: list) -> list:
    """One arm per (dataset, variant); labels 'variant (dataset)'."""
    return [Arm(f"{name} ({ds})", with_(over, {"data": {"name": ds}}), paper, group=ds) for ds in TOY for name, over, paper in variants]


def f3() -> Experiment:
    arms = [a for a in _toy_arms([("SimSiam", method("simsiam"), {}), ("Simplified objective", method("center", lambda_l=-1.0), {})])
            if a.label != "SimSiam (blobs)"]  # SimSiam is only an accuracy reference, and accuracy is judged on moons
    # Accuracy is judged on moons only: on blobs the random-init network already scores 99.6 % (TOY_NOTES), so the data
    # carries no information for an accuracy claim there (issue 11: toy data only where it informs the claim).
    claims = [Claim(f"The simplified objective (invariance + center penalty, eq. 32) is at least as good as SimSiam on {ds} "
                    "(kNN ≥ SimSiam − 0.5 points)", [f"Simplified objective ({ds})", f"SimSiam ({ds})"],
                    R.at_least_best_of(f"Simplified objective ({ds})", [f"SimSiam ({ds})"], "knn", 0.5)) for ds in ("moons",)]
    claims += [Claim(f"The simplified objective trains without collapse on {ds}", [f"Simplified objective ({ds})"],
                     no_complete_collapse(f"Simplified objective ({ds})")) for ds in TOY]
    figs = [Figure("curve", "knn_moons.png", "kNN top-1 on moons over training, 5 seeds (CENTER Fig. 3)",
                   {"measure": "knn", "arms": ["SimSiam (moons)", "Simplified objective (moons)"]}),
            Figure("curve", "center.png", "‖center‖ over training", {"measure": "center"})]
    return Experiment("center-f3", "CENTER", "Fig. 3, simplified objective", "toy blobs and moons, 5 seeds: ≥ SimSiam", arms, claims,
                      [KNN, CENTER, COLLAPSE], figures=figs, data_kind="vector", seeds={"tiny": 1, "smoke": 5, "paper": 5},
                      scale_overrides=TOY_SCALES, notes=TOY_NOTES, smoke_minutes=2)


def f4() -> Experiment:
    variants = [("SimSiam", method("simsiam"), {"fails": "no", "center": "low"}),
                ("SimSiam w/o predictor", method("simsiam_nopred"), {"fails": "yes", "center": "high"}),
                ("SimSiam w/o stop-gradient", method("simsiam_nosg"), {"fails": "yes", "center": "high"})]
    arms = _toy_arms(variants)
    claims = []
    for ds in TOY:
        base = f"SimSiam ({ds})"
        claims.append(Claim(f"SimSiam does not collapse on {ds}", [base], no_complete_collapse(base)))
        for v in ("SimSiam w/o predictor", "SimSiam w/o stop-gradient"):
            lab = f"{v} ({ds})"
            claims.append(Claim(f"{v} collapses on {ds}", [lab], R.collapses(lab)))
            claims.append(Claim(f"{v} has a larger center norm than SimSiam on {ds}", [lab, base], R.greater(lab, base, "center")))
    figs = [Figure("curve", f"center_{ds}.png", f"‖center‖ on {ds} over training (CENTER Fig. 4)",
                   {"measure": "center", "ylabel": "‖center‖", "arms": [f"{v} ({ds})" for v, _, _ in variants]}) for ds in TOY]
    figs += [Figure("curve", f"knn_{ds}.png", f"kNN top-1 on {ds} over training", {"measure": "knn", "arms": [f"{v} ({ds})" for v, _, _ in variants]}) for ds in TOY]
    return Experiment("center-f4", "CENTER", "Fig. 4, toy collapse", "no predictor / no stop-grad: high center norm, collapse", arms, claims,
                      [CENTER, COLLAPSE, STD, KNN], figures=figs, data_kind="vector", seeds={"tiny": 1, "smoke": 3, "paper": 5},
                      scale_overrides=TOY_SCALES, notes=TOY_NOTES, smoke_minutes=2)


def f5() -> Experiment:
    full, inv = "Barlow Twins", "Barlow Twins w/o off-diagonal"
    arms = [Arm(full, method("barlow"), {"fails": "no"}), Arm(inv, method("barlow", off_diagonal=False), {"fails": "no"})]
    return Experiment(
        "center-f5", "CENTER", "Fig. 5, BT without off-diagonal", "with BN: no collapse, lower kNN; BN removes the center", arms,
        [Claim("Without the off-diagonal term (BN kept), Barlow Twins does not collapse (completely)", [inv], no_complete_collapse(inv)),
         Claim("... but its kNN accuracy is lower than full Barlow Twins'", [full, inv], R.greater(full, inv, "knn")),
         Claim("The final BN removes the center: ‖center‖ after BN < before BN, in both runs", [full, inv],
               R.each_greater([full, inv], "center_pre_bn", "center_post_bn"))],
        [KNN, Column("center_pre_bn", "‖center‖ before BN", 3), Column("center_post_bn", "‖center‖ after BN", 3), COLLAPSE, ERANK],
        figures=[Figure("curve", "knn.png", "kNN top-1 over training (CENTER Fig. 5a)", {"measure": "knn"}),
                 Figure("curve", "center_pre.png", "‖center‖ of z before the final BN (CENTER Fig. 5b)", {"measure": "center_pre_bn"}),
                 Figure("curve", "center_post.png", "‖center‖ of z after the final BN (CENTER Fig. 5c)", {"measure": "center_post_bn"})],
        seeds={"tiny": 1, "smoke": 3, "paper": 1}, scale_overrides={"smoke": LARS_SMOKE, "paper": CENTER_PAPER},
        notes={**IMAGE_NOTES, "smoke": IMAGE_NOTES["smoke"] + LARS_NOTE}, smoke_minutes=5)


def center_near_prototypes(label: str, factor: float = PROTO_FACTOR) -> callable:
    """CENTER §3.4: with prototypes drawn uniformly on the sphere, E[prototypes] = 0 and "the center vector
    magnitude is zero by design". K finite prototypes have a center of their own, ‖mean C‖ ≈ 1/√K (0.18 for
    K = 30, 0.058 for K = 300), and z assigned evenly over them inherits it; so "≈ 0" is read as: the
    center of the clean test outputs z at the end, ‖mean z/‖z‖‖, is at most ``factor`` × ‖mean C‖ of the
    run's own prototypes (measured by the ``prototypes`` probe) — the design's zero up to its finite K."""

    def rule(res):
        why = res.missing([label], "center_proj") or res.missing([label], "proto_center")
        if why:
            return None, why
        c, b = res.mean(label, "center_proj"), res.mean(label, "proto_center")
        closed, text = gates(res, [label], "center_proj", factor * b - c)
        if closed:
            return closed
        return c <= factor * b, (f"‖center‖ of clean z of '{label}' = {c:.3f}, ‖mean of its prototypes‖ = {b:.3f}; "
                                 f"rule: ≤ {factor:g} × {b:.3f} = {factor * b:.3f} ({text})")

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
        [Claim("SwAV with fixed random prototypes does not collapse (completely)", [fixed], no_complete_collapse(fixed)),
         Claim(f"... and its center vector stays near zero: ‖center of clean z‖ ≤ {PROTO_FACTOR:g} × ‖mean of the fixed prototypes‖",
               [fixed], center_near_prototypes(fixed)),
         Claim("Learnable prototypes give a better kNN accuracy", [learn, fixed], R.greater(learn, fixed, "knn"))],
        [KNN, CENTER_PROJ, Column("proto_center", "‖mean of prototypes‖", 3), CENTER, COLLAPSE],
        figures=[Figure("curve", "center.png", "‖center‖ of training-batch z over training (CENTER Fig. 6)", {"measure": "center"}),
                 Figure("curve", "knn.png", "kNN top-1 over training", {"measure": "knn"})],
        probe="prototypes", seeds={"tiny": 1, "smoke": 3, "paper": 1}, scale_overrides={"paper": CENTER_PAPER}, notes=IMAGE_NOTES,
        smoke_minutes=4)


MOMENTA = {"tiny": [0.5, 0.99], "smoke": [0.5, 0.8, 0.95, 0.99], "paper": [0.9, 0.99, 0.996]}


def _momentum_arms(values: list) -> list:
    return [Arm(f"ε = {m:g}", with_(method("byol", momentum=m, cosine_schedule=False), NO_FINAL_BN), x=m) for m in values]


def pooled_trend(measure: str, sign: int, min_rho: float = 0.6, growth: bool = False) -> callable:
    """Spearman ρ(ε, value) over every run of every arm (seeds pooled, so ≥ 3 seeds × ≥ 3 arms give ≥ 9
    points and ρ can take more than a handful of values; CENTER Fig. 7 shows one curve over ε). ``growth``:
    the value is the run's end-of-training measure minus its first logged one (CENTER §2.4 assumes the
    center starts at 0; this projector's starts near 0.6, so the change from the start is what ε controls).
    Accuracy measures pass the random-init gate first. Needs ≥ 3 seeds."""

    def rule(res):
        labels = res.labels()
        why = res.missing(labels, measure)
        if why:
            return None, why
        closed = random_init_gate(res, labels, measure)
        if closed:
            return closed
        xs, ys, seeds = [], [], set()
        for lab in labels:
            for r in res.runs(lab):
                end, start = measures.value(r, measure), measures.value(r, measure + "_first")
                if end is None or (growth and start is None):
                    continue
                xs.append(res.x(lab))
                ys.append(end - start if growth else end)
                seeds.add(r.seed)
        if len(seeds) < MIN_SEEDS:
            return UNDECIDABLE, f"{len(seeds)} seed(s) per arm; a pooled rank correlation is decided with ≥ {MIN_SEEDS}"
        rho = R.spearman(xs, ys)
        if rho is None:
            return None, f"{measure}: no spread over {len(xs)} runs"
        what = f"growth of {measure} from its first log" if growth else measure
        want = f"≥ {min_rho:g}" if sign > 0 else f"≤ −{min_rho:g}"
        ok = rho >= min_rho if sign > 0 else rho <= -min_rho
        return ok, f"Spearman ρ(ε, {what}) = {rho:+.2f} over {len(xs)} runs ({len(labels)} arms × {len(seeds)} seeds); rule: {want}"

    return rule


def f7() -> Experiment:
    arms_by_scale = {s: _momentum_arms(v) for s, v in MOMENTA.items()}
    return Experiment(
        "center-f7", "CENTER", "Fig. 7, BYOL momentum", "lower momentum: larger center, lower kNN", arms_by_scale["smoke"],
        [Claim("Lower EMA momentum lets the center norm grow more from its start (Spearman ρ(ε, growth) ≤ −0.6, runs pooled)", ["*"],
               pooled_trend("center", -1, growth=True)),
         Claim("Lower EMA momentum gives a lower kNN accuracy (Spearman ρ(ε, kNN) ≥ 0.6, runs pooled)", ["*"], pooled_trend("knn", +1))],
        [CENTER, Column("center_first", "‖center‖ (first log)", 3), KNN, COLLAPSE],
        figures=[Figure("sweep", "center.png", "‖center‖ against the EMA momentum ε (CENTER Fig. 7)", {"measure": "center", "xlabel": "ε"}),
                 Figure("sweep", "knn.png", "kNN top-1 against ε (CENTER Fig. 7)", {"measure": "knn", "xlabel": "ε"}),
                 Figure("curve", "center_curve.png", "‖center‖ over training", {"measure": "center"})],
        sweep="ε", arms_by_scale=arms_by_scale, seeds={"tiny": 1, "smoke": 3, "paper": 3},
        scale_overrides={"smoke": LARS_SMOKE, "paper": CENTER_PAPER},
        notes={**IMAGE_NOTES, "smoke": IMAGE_NOTES["smoke"] + LARS_NOTE + "CENTER §2.4 assumes a random network's outputs are centered "
               "(E[z⁰] ≈ 0); this BYOL projector (FC-BN-ReLU-FC, no final BN, as in BYOL) starts with ‖center‖ ≈ 0.6, so the "
               "center claim reads the growth of ‖center‖ from the first logged step. 4 momenta × 3 seeds: the rank correlation is "
               "taken over the 12 runs."}, smoke_minutes=10)


EXPERIMENTS = [f3, f4, f5, f6, f7]
