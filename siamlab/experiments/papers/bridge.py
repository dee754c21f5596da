"""BRIDGE (Liu et al. 2022, "Bridging the gap from asymmetry tricks to decorrelation principles"): 6 experiments.

BRIDGE §5.1: ImageNet, ResNet-50, LARS (lr 0.3·B/256, 10 warm-up epochs, cosine to 0), batch 2048,
100 epochs, BYOL/Barlow Twins augmentations, linear-probe accuracy. The method's loss is eq. 19
(c_inv, c_cov, k partitions) with the STD layer of eq. 18. At smoke scale the projectors are shrunk
8× (e.g. 2048-2048-2048 → 256-256-256) and the batch is 256 (2048/8) so that the partitions keep the paper's
ratio of dimensions to samples (k = 8: 256 dimensions over 32 samples, as 2048 over 256). Every claim is
decided by its 95 % interval over seeds (:mod:`..stats`) and quotes BRIDGE. "Collapse" is BRIDGE §1's "a single
point" (Tables 3–4 write COLLAPSE for the accuracy); where BRIDGE's standardization keeps every dimension at unit
variance, the arms are judged by their effective rank instead (§4.2: "standardization alone is not enough; the
space of f¹ can be degenerate") and by their gain over the random-init network.
"""
from __future__ import annotations

from .. import rules as R
from .common import ACCURACY_NOTE, BRIDGE_PAPER, COLLAPSE, KNN, NO_FINAL_BN, SEEDS, SMOKE_IMAGE_NOTE, STD, with_
from .common import method as _method
from ..gates import cap_of
from ..spec import Arm, Claim, Column, Experiment, Figure
from ..stats import Verdict, all_of, seed_test

NOTES = {"smoke": SMOKE_IMAGE_NOTE + "Every method trains with BRIDGE §5.1's optimizer, LARS with base lr 0.3·B/256 and "
                  "weight decay 1.5e-6, but with 2 warm-up epochs (not 10), 20 epochs (not 100) and a LARS trust "
                  "coefficient of 0.02 (the authors' code: 0.001): 400–800 steps instead of ~62 000 need the larger per-step "
                  "change. In Tables 1–4 the projector widths are the paper's divided by 8 and the batch is 256 (not "
                  "2048), so d/n' — dimensions per sample of a partition — is the paper's (2048/256 at k = 8). BRIDGE's loss is "
                  "in the units of the authors' code (invariance averaged over dimensions, partitions averaged), the "
                  "units of the paper's c_inv and c_cov. " + ACCURACY_NOTE,
         "tiny": "Plumbing check only.",
         "paper": "BRIDGE §5.1 settings; the paper trains on ImageNet: point data.root at an image folder (train/ and val/)."}
SIGMA = Column("sigma_i", "‖Σ − I‖² (end)", 4)
FALL_RHO = -0.6  # "decrease with epochs": a clear monotone trend over ≥ 5 evaluations
SYMMETRIC_BELOW = 0.5  # ‖A − Aᵀ‖/‖A‖: √2 for i.i.d. entries, 0 symmetric; 0.5 = antisymmetric part < 1/16 of ‖A‖²
DIAGONAL_ABOVE = 0.5  # diagonal share of ‖A‖²: 1/d for i.i.d. entries, 1 for cI; 0.5 = most of it on the diagonal
CLUSTERED_ABOVE = 0.8  # eigenvalues in the two clusters of Fig. 4b
# BRIDGE §5.1 trains every method with LARS (lr 0.3·B/256); with plain SGD the unnormalized eq. 19 (c_inv = 25)
# diverges at small scale, so tiny and smoke use LARS too (2 warm-up epochs instead of 10).
LARS = {"name": "lars", "lr": 0.3, "weight_decay": 1.5e-6, "warmup_epochs": 2}
OPTIM = {"tiny": {"optim": {**LARS, "warmup_epochs": 0}}, "smoke": {"optim": {**LARS, "epochs": 20}}, "paper": BRIDGE_PAPER}
BATCH = {"tiny": {"optim": {**LARS, "warmup_epochs": 0, "batch_size": 32}}, "smoke": {"optim": {**LARS, "batch_size": 256, "epochs": 20}},
         "paper": BRIDGE_PAPER}


def projector(spec: str) -> dict:
    """'2048-2048-2048' (layer widths, BRIDGE Tables 2 and 4) → model overrides."""
    dims = [int(x) for x in spec.split("-")]
    return {"model": {"proj_layers": len(dims), "proj_hidden": dims[0], "proj_out": dims[-1]}}


def _proj_scales(spec: str, pred_hidden: int = 0) -> dict:
    small = "-".join(str(max(8, int(x) // 8)) for x in spec.split("-"))
    tiny = "-".join(str(max(8, int(x) // 64)) for x in spec.split("-"))
    out = {"paper": projector(spec), "smoke": projector(small), "tiny": projector(tiny)}
    if pred_hidden:
        out = {s: with_(o, {"model": {"pred_hidden": max(8, pred_hidden // d)}}) for (s, o), d in zip(out.items(), (1, 8, 64))}
    return out


def method(name: str, **params) -> dict:
    """Method override; every method here except SimSiam gets its paper's projector without a final BN."""
    return _method(name, **params) if name == "simsiam" else with_(_method(name, **params), NO_FINAL_BN)


def bridge(k: int, c_inv: float, c_cov: float, **kw) -> dict:
    return method("bridge", k=k, c_inv=c_inv, c_cov=c_cov, **kw)


def falls_over_training(label: str, measure: str = "sigma_i", max_rho: float = FALL_RHO, min_points: int = 5) -> callable:
    """BRIDGE Fig. 1 / §5.2 ("We can see that all the tested methods decrease ‖Σ − I‖² with epochs"): over the
    evaluations during training (epochs > 0; the random-init evaluation is left out, its value depends on
    untouched batch-norm running statistics), at least ``min_points`` of them, per seed Spearman ρ(epoch, measure),
    its interval over seeds below ``max_rho``; and per seed last − first evaluation, its interval below 0."""

    def rule(res) -> Verdict:
        why = res.missing([label], measure)
        if why:
            return Verdict(None, why)
        rhos, changes = [], []
        for s in res.series(label, measure):
            pts = [(e, v) for e, v in s if e > 0]
            if len(pts) < min_points:
                return Verdict(None, f"'{label}': {len(pts)} evaluations of {measure} during training, the rule needs {min_points}")
            rho = R.spearman([e for e, _ in pts], [v for _, v in pts])
            rhos.append(1.0 if rho is None else rho)  # constant: no decrease, counted against the claim
            changes.append(pts[-1][1] - pts[0][1])
        cap = cap_of(res)
        return all_of([seed_test(rhos, "below", max_rho, cap=cap, quantity=f"Spearman ρ(epoch, {measure}) of '{label}', per seed"),
                       seed_test(changes, "below", 0.0, cap=cap, quantity=f"last − first {measure} of '{label}' during training")])

    return rule


def f1() -> Experiment:
    arms = [Arm("BYOL (linear predictor)", method("byol", predictor="linear")),
            Arm("BYOL (MLP predictor)", method("byol", predictor="mlp")),
            Arm("SimSiam", method("simsiam")), Arm("Barlow Twins", method("barlow")), Arm("VICReg", method("vicreg")),
            Arm("BRIDGE (ours)", bridge(8, 25.0, 1.0))]
    return Experiment(
        "bridge-f1", "BRIDGE", "Fig. 1, ‖Σ − I‖²", "falls for BYOL (linear and MLP predictor), SimSiam, BT, VICReg, BRIDGE", arms,
        [Claim(f"{a.label}: ‖Σ − I‖² of clean projector features falls over training (Spearman ρ(epoch, ·) ≤ {FALL_RHO:g})",
               [a.label], falls_over_training(a.label)) for a in arms],
        [SIGMA, COLLAPSE, KNN],
        figures=[Figure("curve", "sigma.png", "‖Σ − I‖²/d of clean projector test features over training (BRIDGE Fig. 1)",
                        {"measure": "sigma_i", "logy": True})],
        base={"eval": {"every_epochs": 2}}, scale_overrides={**OPTIM, "paper": with_(BRIDGE_PAPER, {"eval": {"every_epochs": 5}})},
        seeds=SEEDS, notes=NOTES, smoke_minutes=20)


def f3() -> Experiment:
    lab = "BYOL (linear predictor)"
    arms = [Arm(lab, method("byol", predictor="linear"))]
    return Experiment(
        "bridge-f3", "BRIDGE", "Figs. 3–4, W_p", "W_p → cI: symmetric, eigenvalues at one value or 0", arms,
        # BRIDGE §3.3: "W_p quickly converges to a diagonal matrix as t increases, as shown in Fig. 3"; "Figure 4(a)
        # shows that W_p becomes symmetric with epochs. Figure 4(b) shows that the majority of its eigenvalues
        # approximately approach a single constant c and the others go to zero."
        [Claim(f"The learned part ΔW = W_p − W_p(0) is symmetric: ‖ΔW − ΔWᵀ‖/‖ΔW‖ < {SYMMETRIC_BELOW:g} (i.i.d. entries: √2)",
               [lab], R.compare(lab, "asym", "<", SYMMETRIC_BELOW)),
         Claim(f"ΔW is diagonal: the diagonal holds more than {DIAGONAL_ABOVE:g} of ‖ΔW‖²_F (i.i.d. entries: 1/d)",
               [lab], R.compare(lab, "diag_share", ">", DIAGONAL_ABOVE)),
         Claim(f"The eigenvalues of ΔW converge to one positive value or 0 (> {CLUSTERED_ABOVE:g} within 30% of the top cluster's "
               "median or below 30% of it)", [lab], R.compare(lab, "eig_clustered", ">", CLUSTERED_ABOVE))],
        [Column("asym", "‖ΔW − ΔWᵀ‖/‖ΔW‖", 3), Column("diag_share", "diagonal share of ΔW", 3),
         Column("eig_clustered", "eigenvalues of ΔW in the two clusters", 2), Column("asym_w", "‖W − Wᵀ‖/‖W‖ (end)", 3),
         Column("asym_init", "(init)", 3), Column("diag_share_w", "diagonal share of W (end)", 3), KNN],
        figures=[Figure("heatmap", "wp.png", "W_p at initialization, at the end, and its learned part ΔW, first 32 dimensions "
                        "(BRIDGE Fig. 3)", {"keys": ["init", "final", "learned"]}),
                 Figure("spectrum", "wp_eig.png", "sorted eigenvalues of the symmetric parts of W_p(0), W_p and ΔW (BRIDGE Fig. 4b)",
                        {"keys": ["eigenvalues_init", "eigenvalues", "eigenvalues_learned"]}),
                 Figure("curve", "asym.png", "asymmetry of W_p over training (BRIDGE Fig. 4a)", {"measure": "wp_asym"})],
        probe="predictor", scale_overrides=OPTIM, seeds=SEEDS,
        notes={**NOTES, "smoke": NOTES["smoke"] + " The claims read the learned part ΔW = W_p − W_p(0): by Thm 3.1 the random "
               "W_p(0) decays only as e^{−ηt} with the weight decay η, which a short run leaves in place."}, smoke_minutes=5)


T1_ROWS = [(1, 1, 1, 61.4), (1, 1, 25, 60.6), (1, 25, 1, 60.1), (1, 25, 25, 63.4), (8, 25, 1, 67.3), (8, 25, 25, 66.2), (32, 25, 1, 67.3)]


def _t1_label(k, ci, cc) -> str:
    return f"k={k}, c_inv={ci}, c_cov={cc}"


def t1() -> Experiment:
    arms = [Arm(_t1_label(k, ci, cc), bridge(k, float(ci), float(cc)), {"knn": acc}, scale_overrides=_proj_scales("2048-2048-2048"))
            for k, ci, cc, acc in T1_ROWS]
    big_inv = [_t1_label(k, ci, cc) for k, ci, cc, _ in T1_ROWS if ci > cc]
    return Experiment(
        "bridge-t1", "BRIDGE", "Table 1, k / c_inv / c_cov", "partitioning helps; c_inv > c_cov better", arms,
        # BRIDGE §5.3: "We can observe that partitioning the correlation loss and setting the weights as c_inv > c_cov
        # yield better performance" (Table 1).
        [Claim("Partitioning helps: k=8 beats k=1 at c_inv=25, c_cov=1 (paired)", [_t1_label(8, 25, 1), _t1_label(1, 25, 1)],
               R.greater(_t1_label(8, 25, 1), _t1_label(1, 25, 1), "knn")),
         Claim("With partitions, c_inv > c_cov is better: (25, 1) beats (25, 25) at k=8 (paired)", [_t1_label(8, 25, 1), _t1_label(8, 25, 25)],
               R.greater(_t1_label(8, 25, 1), _t1_label(8, 25, 25), "knn")),
         Claim("The best configuration has c_inv > c_cov (the best such arm above the best other, paired)", [a.label for a in arms],
               R.argmax_among([a.label for a in arms], "knn", big_inv))],
        [KNN, COLLAPSE], figures=[Figure("bars", "knn.png", "kNN top-1 per configuration (BRIDGE Table 1)", {"measure": "knn"})],
        scale_overrides=BATCH, seeds=SEEDS, notes=NOTES, smoke_minutes=14)


def t2() -> Experiment:
    rows = [("4096-256", 1, 1, 1, 54.7), ("4096-256", 32, 10, 1, 63.7), ("2048-2048-2048", 1, 1, 1, 61.4),
            ("2048-2048-2048", 32, 10, 1, 66.6), ("2048-2048-2048", 32, 25, 1, 67.3), ("8192-8192-8192", 8, 25, 8, 69.0)]
    lab = lambda p, k, ci, cc: f"{p}, k={k}, {ci}/{cc}"  # noqa: E731
    arms = [Arm(lab(p, k, ci, cc), bridge(k, float(ci), float(cc)), {"knn": acc}, scale_overrides=_proj_scales(p)) for p, k, ci, cc, acc in rows]
    a = [x.label for x in arms]
    return Experiment(
        "bridge-t2", "BRIDGE", "Table 2, projector size", "larger projector better", arms,
        # BRIDGE §5.3: "It is observed that a larger projector leads to better performance, similar to
        # Barlow-Twins/VICReg; this tendency persists for different hyperparameter settings" (Table 2).
        [Claim("2048-2048-2048 beats 4096-256 at k=1, 1/1 (paired)", [a[2], a[0]], R.greater(a[2], a[0], "knn")),
         Claim("2048-2048-2048 beats 4096-256 at k=32, 10/1 (paired)", [a[3], a[1]], R.greater(a[3], a[1], "knn")),
         Claim("8192-8192-8192 (k=8, 25/8) beats 2048-2048-2048 (k=32, 25/1) (paired)", [a[5], a[4]], R.greater(a[5], a[4], "knn"))],
        [KNN, COLLAPSE], figures=[Figure("bars", "knn.png", "kNN top-1 per projector (BRIDGE Table 2)", {"measure": "knn"})],
        scale_overrides=BATCH, seeds=SEEDS, notes=NOTES, smoke_minutes=25)


T3_ROWS = [  # (c_cov, STD, I-PRED, StopGrad, paper accuracy or "COLLAPSE"); k = 1, c_inv = 1 (BRIDGE §5.4)
    (0, False, False, False, "COLLAPSE"), (1, False, False, False, "COLLAPSE"),
    (0, True, False, False, 50.9), (1, True, False, False, 61.4),
    (0, False, True, False, "COLLAPSE"), (1, False, True, False, 62.6),
    (0, True, True, False, 50.9), (1, True, True, False, 58.7),
    (0, True, False, True, 55.0),
]


def _t3_label(cc, std, ipred, sg) -> str:
    parts = [f"Cov={cc}"] + [n for n, on in (("STD", std), ("I-PRED", ipred), ("StopGrad", sg)) if on]
    return " + ".join(parts)


def t3() -> Experiment:
    arms, claims = [], []
    for cc, std, ipred, sg, acc in T3_ROWS:
        label = _t3_label(cc, std, ipred, sg)
        over = bridge(1, 1.0, float(cc), standardize=std, predictor="identity" if ipred else "linear", stop_gradient=sg)
        collapse = acc == "COLLAPSE"
        arms.append(Arm(label, over, {"fails": "yes" if collapse else "no", "knn": "collapse" if collapse else acc},
                        scale_overrides=_proj_scales("2048-2048-2048")))
        claims.append(Claim(f"{label}: {'collapses' if collapse else 'trains'}", [label], R.collapses(label) if collapse else R.trains(label)))
    # BRIDGE §5.4: "the feature standardization helps prevent collapse independently of the presence of the correlation
    # term"; "simply removing StopGrad from BYOL/SimSiam will lead to collapse. We need an additional method to prevent
    # collapsing, i.e., either a standardization layer or COV + I-PRED"; "StopGrad improves the performance, i.e.,
    # 50.9% → 55.0%. Switching StopGrad with our correlation term yields further better results, i.e., 55.0% → 61.4%."
    sg, nosg, cov = _t3_label(0, True, False, True), _t3_label(0, True, False, False), _t3_label(1, True, False, False)
    claims += [Claim("StopGrad improves over no StopGrad at Cov=0 with STD (50.9 → 55.0, paired)", [sg, nosg], R.greater(sg, nosg, "knn")),
               Claim("The correlation term instead of StopGrad is better still (55.0 → 61.4, paired)", [cov, sg], R.greater(cov, sg, "knn"))]
    return Experiment(
        "bridge-t3", "BRIDGE", "Table 3, STD / I-PRED / StopGrad", "as the table: which cells collapse, which train", arms, claims,
        [COLLAPSE, STD, KNN], figures=[Figure("bars", "knn.png", "kNN top-1 per configuration (BRIDGE Table 3)", {"measure": "knn"})],
        scale_overrides=BATCH, seeds=SEEDS,
        notes={**NOTES, "smoke": NOTES["smoke"] + " Table 3's check marks are lost in the text copy of the paper; the row "
               "assignment follows §5.4's prose (no STD and no I-PRED collapse; I-PRED needs Cov; StopGrad row uses STD)."},
        smoke_minutes=23)


def t4() -> Experiment:
    arms = [Arm("BYOL", method("byol"), {"knn": 66.7}, scale_overrides=_proj_scales("4096-256", pred_hidden=4096)),
            Arm("SimSiam", method("simsiam"), {"knn": 68.1}, scale_overrides=_proj_scales("2048-2048-2048", pred_hidden=512)),
            Arm("Barlow Twins", method("barlow"), {"knn": 63.4}, scale_overrides=_proj_scales("2048-2048-2048")),
            Arm("VICReg", method("vicreg"), {"knn": 65.1}, scale_overrides=_proj_scales("2048-2048-2048")),
            Arm("BRIDGE (ours)", bridge(8, 25.0, 1.0), {"knn": 67.3}, scale_overrides=_proj_scales("2048-2048-2048"))]
    return Experiment(
        "bridge-t4", "BRIDGE", "Table 4, comparison", "BRIDGE comparable to SimSiam / BT / VICReg", arms,
        # BRIDGE §5.5: "With the projector size of 2048-2048-2048, our method achieves 67.3%, which is better than
        # Barlow-Twins (63.4%) and VICReg (65.1%) and slightly lower than SimSiam (68.1%)"; §6: "it learns as good
        # representation as BYOL/SimSiam even though it does not use StopGrad". BYOL (66.7) trains as every row does.
        [Claim("BRIDGE trains without collapse", ["BRIDGE (ours)"], R.trains("BRIDGE (ours)")),
         Claim("BYOL (4096-256 projector) trains without collapse", ["BYOL"], R.trains("BYOL")),
         Claim("BRIDGE is comparable: not more than 2 points below the weakest of SimSiam, Barlow Twins, VICReg (paired)",
               ["BRIDGE (ours)", "SimSiam", "Barlow Twins", "VICReg"],
               R.not_below_min_of("BRIDGE (ours)", ["SimSiam", "Barlow Twins", "VICReg"], "knn", 2.0))],
        [KNN, COLLAPSE], figures=[Figure("bars", "knn.png", "kNN top-1 per method (BRIDGE Table 4)", {"measure": "knn"}),
                                  Figure("curve", "knn_curve.png", "kNN top-1 over training", {"measure": "knn"})],
        scale_overrides=BATCH, seeds=SEEDS, notes=NOTES, smoke_minutes=18)


EXPERIMENTS = [f1, f3, t1, t2, t3, t4]
