"""GEN ("generalization of non-contrastive learning"): 4 experiments on the output dimension d.

GEN §5: CIFAR-10/100, ResNet-18, Barlow Twins 800 epochs, simplified SimSiam (linear projector and
linear predictor W_p) 600 epochs, kNN accuracy; L_bound = 2/d²‖Λ − I‖² + (K − d)/d² (eq. 11) with
K the number of classes. Smoke scale uses a Fashion-MNIST subset (K = 10 like CIFAR-10), so the paper's
CIFAR-10 column is shown beside the observed values. Accuracy is kNN on the projector output f, the
d-dimensional feature GEN's Theorem 3 and L_bound are about (the backbone's is shown for reference).
Every claim is decided by its 95 % interval over seeds (:mod:`..stats`): a rank or slope statistic is
computed per seed over the arms of that seed, and its interval decides.
"""
from __future__ import annotations

import math

import numpy as np

from ...analysis.stats import pearson
from .common import ACCURACY_NOTE, GEN_PAPER, KNN, NO_FINAL_BN, SEEDS, SMOKE_IMAGE_NOTE, method, with_
from ..gates import accuracy_gated, by_seed, cap_of, per_run
from ..spec import Arm, Claim, Column, Experiment, Figure
from ..stats import Verdict, all_of, seed_test

K = 10  # classes of Fashion-MNIST / CIFAR-10
CIFAR10 = {  # GEN Table 1, CIFAR-10 columns: d -> (Barlow Twins, SimSiam)
    2048: (85.61, 88.15), 1024: (84.60, 88.18), 512: (82.79, 87.63), 256: (81.05, 85.99), 128: (78.94, 85.78),
    64: (77.19, 85.05), 32: (72.73, 84.56), 16: (67.94, 83.20), 8: (62.49, 82.14), 4: (57.16, 76.05),
}
# Smoke sweep: two dimensions below 2K = 20 besides d_ref = 32 and two above it for Table 1's slopes, four above
# K for Fig. 3's correlation; 3 seeds (the margins are a few points). d = 8 is left out for the CPU budget.
DIMS = {"tiny": [4, 32], "smoke": [4, 16, 32, 64, 128], "paper": sorted(CIFAR10)}
# Smoke optimizers (calibration runs, 20 epochs): Barlow Twins with the preset's SGD did not beat its random-init
# network; with LARS, its own paper's optimizer, it did. The simplified SimSiam uses GEN's lr 0.05 (GEN_PAPER); at
# large d it gained little over its random-init network with any of the lrs tried, at small d much more.
BT_SMOKE = {"optim": {"name": "lars", "lr": 0.3, "weight_decay": 1.5e-6, "warmup_epochs": 2}}
METHODS = {  # name: (overrides, {scale: overrides}, column of GEN Table 1)
    "Barlow Twins": (with_(method("barlow"), NO_FINAL_BN), {"paper": {"optim": {"epochs": 800}}, "smoke": BT_SMOKE}, 0),
    "SimSiam (linear)": (with_(method("simsiam", predictor="linear"), {"model": {"proj_layers": 1}}),
                         {"smoke": {"optim": {"lr": 0.05}}}, 1),
}
CLEAR_R = -0.5  # "clear" / "significant" negative correlation (GEN §5 gives no number): r ≤ −0.5
STEEPER_BY = 1.0  # points of kNN per halving of d (GEN Table 1's own columns: 1.1 to 3.4)
KNN_PROJ = Column("knn_proj", "kNN top-1 % on f (projector)", 1)
KNN_PROJ_INIT = Column("knn_proj_init", "kNN on f at random init", 1)
L_BOUND = Column("l_bound", "L_bound (eq. 11)", 4)
L_BOUND_INIT = Column("l_bound_init", "L_bound at random init (this d)", 4)
NOTES = {"smoke": SMOKE_IMAGE_NOTE + "Fashion-MNIST has K = 10 classes like CIFAR-10, whose column of GEN Table 1 is shown. "
                  "GEN's claims are about the d-dimensional output f: kNN here is on the projector output (GEN Thm 3, "
                  "eq. 11), unlike the other experiments' backbone kNN. Barlow Twins trains with LARS, its paper's "
                  "optimizer (base lr 0.3·B/256, weight decay 1.5e-6, 2 warm-up epochs): with the preset's SGD it did not "
                  "beat its random-init network in calibration. The simplified SimSiam (linear projector with BN, linear "
                  "predictor) uses GEN's lr 0.05. 20 epochs (GEN: 800 / 600). The d sweep is 4, 16, 32, 64, 128 (d ≥ 2K = "
                  "20 from 32 on), 3 seeds. " + ACCURACY_NOTE,
         "tiny": "Plumbing check only.", "paper": "GEN §5 settings on CIFAR-10; set data.root (use data.name=cifar100 for the CIFAR-100 columns)."}


def dim_arms(scale: str, methods=tuple(METHODS)) -> list:
    arms = []
    for name in methods:
        over, scale_over, col = METHODS[name]
        for d in DIMS[scale]:
            paper = {"knn": CIFAR10[d][col]} if d in CIFAR10 else {}
            arms.append(Arm(f"{name}, d={d}", with_(over, {"model": {"proj_out": d}}), paper, x=d, group=name,
                            scale_overrides=scale_over))
    return arms


def _by_method(res, name: str) -> list:
    return [a for a in res.arms if a.group == name]


def lstsq_slope(xs: list, ys: list) -> float:
    """Slope of the least-squares line y ≈ a·x + b."""
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def halving_slopes(knn_by_d: dict, k: int = K) -> tuple:
    """(slope for d ≤ d_ref, slope for d ≥ d_ref, d_ref): least-squares slopes of kNN against log₂ d
    (points of accuracy lost per halving of d), split at d_ref, the smallest swept d ≥ 2K (GEN §5:
    V(d) = (K − d)/d² is smallest at d = 2K)."""
    below, above, ref = _split(sorted(knn_by_d), k)
    slope = lambda sel: lstsq_slope([math.log2(d) for d in sel], [knn_by_d[d] for d in sel])  # noqa: E731
    return slope(below), slope(above), ref


def _split(ds: list, k: int) -> tuple:
    ref = min((d for d in ds if d >= 2 * k), default=None)
    below, above = [d for d in ds if ref is not None and d <= ref], [d for d in ds if ref is not None and d >= ref]
    if len(below) < 2 or len(above) < 2:
        raise ValueError(f"the sweep {ds} needs two dimensions on each side of 2K = {2 * k}")
    return below, above, ref


def per_seed_values(res, labels: list, measure: str) -> dict:
    """seed -> {label: value} for the seeds in which every arm of ``labels`` has ``measure``."""
    vals = {lab: by_seed(res, lab, measure) for lab in labels}
    seeds = set.intersection(*(set(v) for v in vals.values())) if vals else set()
    return {s: {lab: vals[lab][s] for lab in labels} for s in sorted(seeds)}


def steeper_below_2k(name: str, margin: float = STEEPER_BY, measure: str = "knn_proj") -> callable:
    """GEN §5 ("while d > 2K the generalization performance does not hurt too much, but if d gets smaller,
    especially d < K, the model can no longer maintain its generalizability"; Table 1): kNN falls faster per
    halving of d below 2K than above it, by more than ``margin`` points per halving. Per seed, the least-squares
    slopes of kNN against log₂ d (:func:`halving_slopes`, split at the smallest swept d ≥ 2K) give one difference
    below − above; its interval over seeds must lie above ``margin``. GEN's own four columns pass with room:
    below − above = 3.2 / 1.1 (Barlow Twins, CIFAR-10 / 100), 2.0 / 3.4 (SimSiam); an accuracy that falls evenly
    with log d, or not at all, fails. Every arm must beat its random init (:mod:`..gates`)."""

    def rule(res) -> Verdict:
        arms = _by_method(res, name)
        labels = [a.label for a in arms]
        why = res.missing(labels, measure)
        if why:
            return Verdict(None, why)
        try:
            _split(sorted(a.x for a in arms), K)
        except ValueError as err:
            return Verdict(None, str(err))
        x_of = {a.label: a.x for a in arms}
        diffs = []
        for vals in per_seed_values(res, labels, measure).values():
            below, above, ref = halving_slopes({x_of[lab]: v for lab, v in vals.items()})
            diffs.append(below - above)
        v = seed_test(diffs, "above", margin, cap=cap_of(res),
                      quantity=f"{name}: kNN on f, slope per halving of d below 2K − above it, per seed")
        return accuracy_gated(res, labels, measure, v)

    return rule


def correlated_above_k(name: str, max_r: float = CLEAR_R) -> callable:
    """GEN Fig. 3 ("there is still a clear correlation between knn accuracy and L_bound ... The smaller L_bound
    is, the larger knn accuracy is"; the line is fitted over d > K): per seed, Pearson r(L_bound, kNN on f) over
    the arms with d > K; its interval over seeds below ``max_r``. A sign alone would hold by chance half the time.
    Every arm must beat its random init."""

    def rule(res) -> Verdict:
        labels = [a.label for a in _by_method(res, name) if a.x > K]
        why = res.missing(labels, "l_bound") or res.missing(labels, "knn_proj")
        if why:
            return Verdict(None, why)
        lb, kn = per_seed_values(res, labels, "l_bound"), per_seed_values(res, labels, "knn_proj")
        rs = [pearson([lb[s][lab] for lab in labels], [kn[s][lab] for lab in labels]) for s in sorted(set(lb) & set(kn))]
        rs = [r for r in rs if r is not None]
        if not rs:
            return Verdict(None, f"{name}: no spread in L_bound or kNN across the {len(labels)} arms with d > K in any seed")
        v = seed_test(rs, "below", max_r, cap=cap_of(res),
                      quantity=f"{name}: Pearson r(L_bound, kNN on f) over {len(labels)} arms with d > K, per seed")
        return accuracy_gated(res, labels, "knn_proj", v)

    return rule


# gen-t1 and gen-f3 share their runs (the second reuses the first's): at smoke, evaluation only at random init and
# at the end (the claims read the final values), 3 seeds; smoke_minutes is the estimate `siamlab reproduce --list` shows.
SWEEP = dict(scale_overrides={"paper": GEN_PAPER, "smoke": {"eval": {"every_epochs": 20}}}, seeds=SEEDS,
             notes=NOTES, smoke_minutes=21)


def t1() -> Experiment:
    arms_by = {s: dim_arms(s) for s in DIMS}
    return Experiment(
        "gen-t1", "GEN", "Table 1, output dimension", "accuracy holds for d ≥ 2K, drops fast for d < K", arms_by["smoke"],
        [Claim(f"{n}: kNN on f falls faster per halving of d below 2K than above it (by > {STEEPER_BY:g} point per halving)",
               [f"group:{n}"], steeper_below_2k(n)) for n in METHODS],
        [KNN_PROJ, KNN_PROJ_INIT, KNN, L_BOUND, L_BOUND_INIT],
        figures=[Figure("sweep", "knn_d.png", "kNN top-1 on the projector output f against its dimension d (GEN Table 1)",
                        {"measure": "knn_proj", "logx": True, "xlabel": "d"})],
        sweep="d", arms_by_scale=arms_by, **SWEEP)


def f3() -> Experiment:
    arms_by = {s: dim_arms(s) for s in DIMS}
    figs = [Figure("scatter_fit", f"lbound_knn_{i}.png", f"{n}: kNN on f against L_bound over d, least-squares line over d > K (GEN Fig. 3)",
                   {"x": "l_bound", "y": "knn_proj", "arms": [a.label for a in arms_by["smoke"] if a.group == n],
                    "fit_arms": [a.label for a in arms_by["smoke"] if a.group == n and a.x > K]}) for i, n in enumerate(METHODS)]
    return Experiment(
        "gen-f3", "GEN", "Fig. 3, L_bound vs kNN", "negative correlation across d, least-squares line", arms_by["smoke"],
        [Claim(f"{n}: L_bound and kNN on f are clearly negatively correlated across d > K (r ≤ {CLEAR_R:g})", [f"group:{n}"],
               correlated_above_k(n)) for n in METHODS],
        [KNN_PROJ, KNN_PROJ_INIT, L_BOUND, L_BOUND_INIT, Column("l_cor", "L_cor", 3)], figures=figs,
        sweep="d", arms_by_scale=arms_by, **SWEEP)


def trajectory_rule(label: str, burn_in: float = 0.25, max_r: float = CLEAR_R, min_points: int = 6) -> callable:
    """GEN Fig. 4 ("the linear relationship among the sample points is significant ... as training progresses
    proceeding, sample points ... move from right to left along the fitting line, L_bound decreases and K-nearest
    neighbor accuracy increases"): over the evaluations after the first ``burn_in`` fraction of training (GEN fits
    after 50/800 and 150/600 epochs), at least ``min_points`` of them, per seed Pearson r(L_bound, kNN on f), its
    interval below ``max_r``; and per seed L_bound's change from burn-in to the end, its interval below 0, and kNN's,
    above 0. The arm must beat its random init."""

    def rule(res) -> Verdict:
        why = res.missing([label], "l_bound") or res.missing([label], "knn_proj")
        if why:
            return Verdict(None, why)
        rs, lb_change, knn_change = [], [], []
        for lb, kn in zip(res.series(label, "l_bound"), res.series(label, "knn_proj")):
            last = lb[-1][0] if lb else 0
            knn_at = dict(kn)
            pts = [(e, v, knn_at[e]) for e, v in lb if e > 0 and e >= burn_in * last and e in knn_at]
            if len(pts) < min_points:
                return Verdict(None, f"'{label}': {len(pts)} evaluations after burn-in, the rule needs {min_points}")
            r = pearson([p[1] for p in pts], [p[2] for p in pts])
            rs.append(1.0 if r is None else r)  # no spread: no correlation to speak of, counted against the claim
            lb_change.append(pts[-1][1] - pts[0][1])
            knn_change.append(pts[-1][2] - pts[0][2])
        cap = cap_of(res)
        v = all_of([seed_test(rs, "below", max_r, cap=cap, quantity=f"Pearson r(L_bound, kNN on f) of '{label}' after burn-in"),
                    seed_test(lb_change, "below", 0.0, cap=cap, quantity=f"change of L_bound of '{label}' after burn-in"),
                    seed_test(knn_change, "above", 0.0, cap=cap, quantity=f"change of kNN on f of '{label}' after burn-in")])
        return accuracy_gated(res, [label], "knn_proj", v)

    return rule


def f4() -> Experiment:
    d = {"tiny": 32, "smoke": 64, "paper": 2048}
    arms_by = {s: [Arm(f"{n}, d={d[s]}", with_(METHODS[n][0], {"model": {"proj_out": d[s]}}), x=d[s], group=n,
                       scale_overrides=METHODS[n][1]) for n in METHODS] for s in d}
    claims = [Claim(f"{n}: L_bound falls while kNN on f rises over training (r ≤ {CLEAR_R:g} after burn-in)", [f"group:{n}"],
                    (lambda name: lambda res: trajectory_rule([a.label for a in res.arms if a.group == name][0])(res))(n)) for n in METHODS]
    return Experiment(
        "gen-f4", "GEN", "Fig. 4, trajectories", "L_bound falls as kNN rises over training", arms_by["smoke"], claims,
        [KNN_PROJ, KNN_PROJ_INIT, L_BOUND],
        figures=[Figure("trajectory", "trajectory.png", "kNN on f against L_bound over training, dashed: least squares after burn-in "
                        "(GEN Fig. 4)", {"x": "l_bound", "y": "knn_proj", "burn_in": 0.25}),
                 Figure("curve", "lbound.png", "L_bound over training", {"measure": "l_bound"})],
        base={"eval": {"every_epochs": 1}}, arms_by_scale=arms_by, scale_overrides={"paper": with_(GEN_PAPER, {"eval": {"every_epochs": 10}}), "tiny": {"optim": {"epochs": 3}}},
        seeds=SEEDS, notes=NOTES, smoke_minutes=6)


def f5() -> Experiment:
    arms = [Arm("SimSiam", method("simsiam"), {"offdiag_abs": "≈ 0 (close to identity)"})]
    return Experiment(
        "gen-f5", "GEN", "App. E.3, correlation matrix", "close to identity", arms,
        [Claim("The correlation matrix Λ of the trained SimSiam features is close to identity: mean |off-diagonal| < 0.1 "
               "and below the random-init network's", ["SimSiam"], _close_to_identity("SimSiam"))],
        [Column("offdiag_abs", "mean |off-diag Λ| (trained)", 4), Column("offdiag_abs_init", "mean |off-diag Λ| (random init)", 4),
         Column("sigma_i", "‖Σ − I‖²/d (projector)", 4), KNN],
        figures=[Figure("heatmap", "lambda.png", "Λ = E[f fᵀ] of projector features on test images, first 32 dimensions: "
                        "random init and trained (GEN Fig. 5)", {"keys": ["random_init", "trained"]})],
        probe="correlation", scale_overrides={"paper": with_(GEN_PAPER, {"model": {"proj_out": 2048}})},
        seeds=SEEDS, notes=NOTES, smoke_minutes=3)


def _close_to_identity(label: str) -> callable:
    """GEN App. E.3 / Fig. 5: "The correlation matrixes are close to identity matrix." Per run, the mean |off-diagonal|
    of Λ of the trained projector features, its interval below 0.1; and per run trained − random init of the same
    network, its interval below 0 (closer to identity than where training started)."""

    def rule(res) -> Verdict:
        why = res.missing([label], "offdiag_abs")
        if why:
            return Verdict(None, why)
        cap = cap_of(res)
        parts = [seed_test(list(by_seed(res, label, "offdiag_abs").values()), "below", 0.1, cap=cap,
                           quantity=f"mean |off-diagonal Λ| of '{label}' (trained)")]
        if res.values(label, "offdiag_abs_init"):
            parts.append(seed_test(per_run(res, label, lambda t, i: t - i, "offdiag_abs", "offdiag_abs_init"), "below", 0.0,
                                   cap=cap, quantity=f"mean |off-diagonal Λ| of '{label}', trained − random init"))
        return all_of(parts)

    return rule


EXPERIMENTS = [t1, f3, f4, f5]
