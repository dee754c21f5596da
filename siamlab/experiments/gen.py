"""GEN ("generalization of non-contrastive learning"): 4 experiments on the output dimension d.

GEN §5: CIFAR-10/100, ResNet-18, Barlow Twins 800 epochs, simplified SimSiam (linear projector and
linear predictor W_p) 600 epochs, kNN accuracy; L_bound = 2/d²‖Λ − I‖² + (K − d)/d² (eq. 11) with
K the number of classes. Smoke scale uses digits (K = 10 like CIFAR-10), so the paper's CIFAR-10
column is shown beside the observed values.
"""
from __future__ import annotations

from . import rules as R
from .common import ACCURACY_NOTE, GEN_PAPER, KNN, NO_FINAL_BN, SMOKE_IMAGE_NOTE, method, with_
from .spec import Arm, Claim, Column, Experiment, Figure

K = 10  # classes of digits / CIFAR-10
CIFAR10 = {  # GEN Table 1, CIFAR-10 columns: d -> (Barlow Twins, SimSiam)
    2048: (85.61, 88.15), 1024: (84.60, 88.18), 512: (82.79, 87.63), 256: (81.05, 85.99), 128: (78.94, 85.78),
    64: (77.19, 85.05), 32: (72.73, 84.56), 16: (67.94, 83.20), 8: (62.49, 82.14), 4: (57.16, 76.05),
}
DIMS = {"tiny": [4, 32], "smoke": [4, 8, 16, 32, 64, 128], "paper": sorted(CIFAR10)}
METHODS = {
    "Barlow Twins": (with_(method("barlow"), NO_FINAL_BN), {"optim": {"epochs": 800}}, 0),
    "SimSiam (linear)": (with_(method("simsiam", predictor="linear"), {"model": {"proj_layers": 1}}), {}, 1),
}
L_BOUND = Column("l_bound", "L_bound (eq. 11)", 4)
L_BOUND_INIT = Column("l_bound_init", "L_bound at random init (this d)", 4)
NOTES = {"smoke": SMOKE_IMAGE_NOTE + "Digits has K = 10 classes like CIFAR-10, whose column of GEN Table 1 is shown. " + ACCURACY_NOTE,
         "tiny": "Plumbing check only.", "paper": "GEN §5 settings on CIFAR-10; set data.root (use data.name=cifar100 for the CIFAR-100 columns)."}


def dim_arms(scale: str, methods=tuple(METHODS)) -> list:
    arms = []
    for name in methods:
        over, paper_over, col = METHODS[name]
        for d in DIMS[scale]:
            paper = {"knn": CIFAR10[d][col]} if d in CIFAR10 else {}
            arms.append(Arm(f"{name}, d={d}", with_(over, {"model": {"proj_out": d}}), paper, x=d, group=name,
                            scale_overrides={"paper": paper_over}))
    return arms


def _by_method(res, name: str) -> list:
    return [a for a in res.arms if a.group == name]


def holds_and_drops(name: str, tol: float = 3.0, drop: float = 3.0) -> callable:
    """GEN §5: every d ≥ 2K is within ``tol`` points of the best d ≥ 2K, and the mean over d < K is
    more than ``drop`` points below the mean over d ≥ 2K."""

    def rule(res):
        arms = _by_method(res, name)
        big = [a.label for a in arms if a.x >= 2 * K]
        small = [a.label for a in arms if a.x < K]
        why = res.missing(big + small, "knn")
        if why:
            return None, why
        if not big or not small:
            return None, "the sweep needs dimensions both ≥ 2K and < K"
        mb = [res.mean(lab, "knn") for lab in big]
        ms = [res.mean(lab, "knn") for lab in small]
        holds = min(mb) >= max(mb) - tol
        falls = sum(ms) / len(ms) < sum(mb) / len(mb) - drop
        return holds and falls, (f"{name}: kNN for d ≥ 2K in [{min(mb):.1f}, {max(mb):.1f}], mean for d < K {sum(ms) / len(ms):.1f} "
                                 f"vs {sum(mb) / len(mb):.1f}; rule: spread ≤ {tol:g} and drop > {drop:g} points")

    return rule


def _corr_above_k(name: str) -> callable:
    """Pearson r(L_bound, kNN) across the arms with d > K is negative (GEN Fig. 3 fits d > K)."""

    def rule(res):
        labels = [a.label for a in _by_method(res, name) if a.x > K]
        return R.correlation(labels, "l_bound", "knn", -1)(res)

    return rule


def t1() -> Experiment:
    arms_by = {s: dim_arms(s) for s in DIMS}
    return Experiment(
        "gen-t1", "GEN", "Table 1, output dimension", "accuracy holds for d ≥ 2K, drops fast for d < K", arms_by["smoke"],
        [Claim(f"{n}: accuracy holds for d ≥ 2K (within 3 points) and drops for d < K (> 3 points)", [f"group:{n}"], holds_and_drops(n))
         for n in METHODS],
        [KNN, L_BOUND, L_BOUND_INIT],
        figures=[Figure("sweep", "knn_d.png", "kNN top-1 against the output dimension d (GEN Table 1)", {"measure": "knn", "logx": True, "xlabel": "d"})],
        sweep="d", arms_by_scale=arms_by, scale_overrides={"paper": GEN_PAPER}, notes=NOTES, smoke_minutes=3)


def f3() -> Experiment:
    arms_by = {s: dim_arms(s) for s in DIMS}
    figs = [Figure("scatter_fit", f"lbound_knn_{i}.png", f"{n}: kNN against L_bound over d, least-squares line over d > K (GEN Fig. 3)",
                   {"x": "l_bound", "y": "knn", "arms": [a.label for a in arms_by["smoke"] if a.group == n],
                    "fit_arms": [a.label for a in arms_by["smoke"] if a.group == n and a.x > K]}) for i, n in enumerate(METHODS)]
    return Experiment(
        "gen-f3", "GEN", "Fig. 3, L_bound vs kNN", "negative correlation across d, least-squares line", arms_by["smoke"],
        [Claim(f"{n}: L_bound and kNN are negatively correlated across d > K", [f"group:{n}"], _corr_above_k(n)) for n in METHODS],
        [KNN, L_BOUND, L_BOUND_INIT, Column("l_cor", "L_cor", 3)], figures=figs,
        sweep="d", arms_by_scale=arms_by, scale_overrides={"paper": GEN_PAPER}, notes=NOTES, smoke_minutes=3)


def trajectory_rule(label: str, burn_in: float = 0.25) -> callable:
    """Over the eval epochs after the first ``burn_in`` fraction of training (GEN fits after 50/800 and
    150/600 epochs), Pearson r(L_bound, kNN) < 0 and L_bound at the end is below its value at burn-in."""

    def rule(res):
        why = res.missing([label], "l_bound")
        if why:
            return None, why
        outs = []
        for lb, kn in zip(res.series(label, "l_bound"), res.series(label, "knn")):
            last = lb[-1][0] if lb else 0
            knn_at = dict(kn)
            pts = [(e, v, knn_at[e]) for e, v in lb if e >= burn_in * last and e in knn_at]
            if len(pts) < 3:
                return None, f"'{label}': fewer than 3 evaluations after burn-in"
            r = R.pearson([p[1] for p in pts], [p[2] for p in pts])
            outs.append((r is not None and r < 0 and pts[-1][1] < pts[0][1], r, pts[0][1], pts[-1][1]))
        ok = sum(o[0] for o in outs) > len(outs) / 2
        _, r, first, end = outs[0]
        rtxt = "undefined" if r is None else f"{r:+.2f}"
        return ok, f"'{label}': r(L_bound, kNN) = {rtxt}, L_bound {first:.4g} → {end:.4g} after burn-in; rule: r < 0 and L_bound falls"

    return rule


def f4() -> Experiment:
    d = {"tiny": 32, "smoke": 64, "paper": 2048}
    arms_by = {s: [Arm(f"{n}, d={d[s]}", with_(METHODS[n][0], {"model": {"proj_out": d[s]}}), x=d[s], group=n,
                       scale_overrides={"paper": METHODS[n][1]}) for n in METHODS] for s in d}
    claims = [Claim(f"{n}: L_bound falls while kNN rises over training (negative correlation after burn-in)", [f"group:{n}"],
                    (lambda name: lambda res: trajectory_rule([a.label for a in res.arms if a.group == name][0])(res))(n)) for n in METHODS]
    return Experiment(
        "gen-f4", "GEN", "Fig. 4, trajectories", "L_bound falls as kNN rises over training", arms_by["smoke"], claims,
        [KNN, L_BOUND],
        figures=[Figure("trajectory", "trajectory.png", "kNN against L_bound over training, dashed: least squares after burn-in (GEN Fig. 4)",
                        {"x": "l_bound", "y": "knn", "burn_in": 0.25}),
                 Figure("curve", "lbound.png", "L_bound over training", {"measure": "l_bound"})],
        base={"eval": {"every_epochs": 1}}, arms_by_scale=arms_by, scale_overrides={"paper": with_(GEN_PAPER, {"eval": {"every_epochs": 10}}), "tiny": {"optim": {"epochs": 3}}},
        notes=NOTES, smoke_minutes=1)


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
        notes=NOTES, smoke_minutes=1)


def _close_to_identity(label: str) -> callable:
    def rule(res):
        why = res.missing([label], "offdiag_abs")
        if why:
            return None, why
        t, i = res.mean(label, "offdiag_abs"), res.mean(label, "offdiag_abs_init")
        ok = t < 0.1 and (i is None or t < i)
        itxt = "n/a" if i is None else f"{i:.4f}"
        return ok, f"mean |off-diagonal Λ| trained {t:.4f}, random init {itxt}; rule: < 0.1 and below random init"

    return rule


EXPERIMENTS = [t1, f3, f4, f5]
