"""ZHANG (Zhang et al. 2022, "How does SimSiam avoid collapse without negative samples?"): 14 experiments.

Paper settings (A.1): ResNet-18 on CIFAR-100, SimSiam projector 2048-2048-2048 and predictor
2048-512-2048, SGD lr 0.5·M/256 (M = 256), momentum 0.9, wd 1e-5, 10 warm-up epochs, 1000 epochs,
predictor lr fixed, online linear probe. Reported accuracies are linear-probe top-1 on CIFAR-100.

Rules were written from the paper's text and tables before the smoke runs (issue 11) and reviewed against it
again for ISSUE 19 (each claim quotes ZHANG); calibration runs chose only epochs, seeds and the final-BN
deviation, so that the mechanism has time to show — never a threshold. Every claim is decided by its 95 %
interval over seeds (:mod:`..stats`). Magnitudes the paper reports are checked where it reports them (Fig. 5a);
claims that hold by construction are sanity checks, not reproductions (Fig. 7a's entropy; Fig. 4's "... while
decreasing m_r", implied by the rise of m_o for unit vectors).
"""
from __future__ import annotations

from .. import rules as R
from .common import (ACCURACY_NOTE, COLLAPSE, COV, KNN, M_O, M_R, SEEDS, SMOKE_IMAGE_NOTE, STD, STD_RAW, method, with_)
from ..spec import Arm, Claim, Column, Experiment, Figure
from .zhang_rules import (PAPER_EPOCH_STEPS, below_peak, falls_at_high, magnitude, recovery_rule)

NOTES = {"smoke": SMOKE_IMAGE_NOTE + ACCURACY_NOTE, "tiny": "Plumbing check only.",
         "paper": "ZHANG A.1 settings; set data.root to your CIFAR-100 copy."}
# Collapse experiments drop the projector's final BN at smoke scale: ZHANG A.1's final BN has no affine
# parameters, so in training mode every dimension of z keeps zero batch mean and unit variance and z cannot
# become constant (in calibration runs Naive Siamese with it lost dimensions instead of collapsing completely,
# and without it collapsed completely within an epoch while SimSiam without it still trained).
NO_FINAL_BN = {"model": {"proj_final_bn": False}}
FINAL_BN_NOTE = (" Deviation: the projector has no final BN at this scale. ZHANG A.1's final BN has no affine "
                 "parameters, so in training mode every dimension of z keeps unit batch variance and z cannot become "
                 "constant: with it, Naive Siamese lost dimensions within 20 epochs instead of collapsing completely as "
                 "in ZHANG Table 2; without it Naive Siamese collapses completely within about an epoch, and SimSiam "
                 "still trains (calibration runs). The paper scale keeps ZHANG A.1's projector.")
COLLAPSE_NOTES = {**NOTES, "smoke": NOTES["smoke"] + FINAL_BN_NOTE}
COLLAPSE_SMOKE = {"smoke": with_(NO_FINAL_BN, {"optim": {"epochs": 10}})}
SIMSIAM = method("simsiam")
KNN_CURVE = Figure("curve", "knn.png", "kNN top-1 over training (mean over seeds, band = seed range)", {"measure": "knn", "ylabel": "kNN top-1 %"})
STD_CURVE = Figure("curve", "std.png", "√d·std of l2-normalized z over training (0 = collapse)", {"measure": "std", "ylabel": "√d·std(z/‖z‖)"})
P_STD = Column("p_std", "√d·std(P/‖P‖)", 3)


def t1() -> Experiment:
    arms = [
        Arm("Moving average (2 aug)", method("eoa", mode="moving_average", momentum=0.8),
            {"fails": "no", "std_raw": 0.0108, "knn": 46.57}),
        Arm("Same batch (N=10)", with_(method("eoa", mode="same_batch"), {"data": {"views": 10}}),
            {"fails": "yes", "std_raw": 0, "knn": 1}),
        Arm("Same batch (N=25)", with_(method("eoa", mode="same_batch"), {"data": {"views": 25}}),
            {"fails": "yes", "std_raw": 0, "knn": 1}),
    ]
    labels = [a.label for a in arms]
    return Experiment(
        "zhang-t1", "ZHANG", "Table 1, explicit EOA",
        "moving average: no collapse; same batch N=10, 25: collapse", arms,
        # ZHANG Table 1: Moving average, Collapse ×, Top-1 46.57; Same batch N = 10 and 25, Collapse ✓, Top-1 1.
        # §2.2: "Table 1 shows that the collapse still occurs and suggests that the equivalence between predictor
        # and EOA does not hold."
        [Claim("A per-sample moving-average target (no predictor) trains without collapse (Table 1)", [labels[0]], R.trains(labels[0])),
         Claim("Explicit EOA with N=10 augmentations in one batch collapses (Table 1)", [labels[1]], R.collapses(labels[1])),
         Claim("Explicit EOA with N=25 augmentations in one batch collapses (Table 1)", [labels[2]], R.collapses(labels[2]))],
        [COLLAPSE, STD_RAW, STD, KNN], figures=[STD_CURVE, KNN_CURVE], scale_overrides=COLLAPSE_SMOKE,
        seeds=SEEDS, notes=COLLAPSE_NOTES, smoke_minutes=9)


def t2() -> Experiment:
    arms = [
        Arm("SimSiam", SIMSIAM, {"fails": "no", "knn": 66.62}),
        Arm("Mirror SimSiam", method("mirror", variant="symmetric"), {"fails": "yes", "knn": 1}),
        Arm("Naive Siamese", method("naive"), {"fails": "yes", "knn": 1}),
        Arm("Symmetric Predictor", method("sympred", variant="alg4"), {"fails": "yes", "knn": 1}),
    ]
    # ZHANG Table 2 (SimSiam Collapse ×, 66.62; the others ✓, 1); §2.3: "the symmetric architectures with and
    # without predictor h both lead to collapse"; "SimSiam avoids collapse by excluding Mirror SimSiam".
    claims = [Claim("SimSiam trains without collapse (Table 2)", ["SimSiam"], R.trains("SimSiam"))]
    claims += [Claim(f"{a.label} collapses (Table 2)", [a.label], R.collapses(a.label)) for a in arms[1:]]
    return Experiment("zhang-t2", "ZHANG", "Table 2 / Fig. 8, architectures",
                      "SimSiam trains; Mirror, Naive, Symmetric Predictor collapse", arms, claims,
                      [COLLAPSE, STD, P_STD, KNN], figures=[STD_CURVE, KNN_CURVE], scale_overrides=COLLAPSE_SMOKE,
                      seeds=SEEDS, notes=COLLAPSE_NOTES, smoke_minutes=4.5)


def f3() -> Experiment:
    arms = [Arm("SimSiam", SIMSIAM, {"fails": "no"}), Arm("Inverse predictor", method("inverse"), {"fails": "no"})]
    return Experiment(
        "zhang-f3", "ZHANG", "Fig. 3, inverse predictor", "trainable, a little below SimSiam", arms,
        # ZHANG §2.3: "a learnable h⁻¹ leads to slightly inferior performance ... Despite a slight performance drop,
        # the results confirm that h⁻¹ is trainable."
        [Claim("The trainable inverse predictor trains without collapse", ["Inverse predictor"], R.trains("Inverse predictor")),
         Claim("Its accuracy is a little below SimSiam's: the paired difference below 0, by at most 10 points",
               ["SimSiam", "Inverse predictor"], R.slightly_below("Inverse predictor", "SimSiam", "knn", 10.0))],
        [COLLAPSE, STD, KNN], figures=[KNN_CURVE, STD_CURVE], seeds=SEEDS,
        scale_overrides={"smoke": {"optim": {"epochs": 40}}},
        notes={**NOTES, "smoke": NOTES["smoke"] + " 40 epochs: the inverse predictor trains two predictors, and at the "
               "preset's 20 epochs its gain over its random-init network was too small for its accuracy to be "
               "compared (calibration runs)."}, smoke_minutes=9)


def f4() -> Experiment:
    c, r = "−Z_a·sg(o_z)", "−Z_a·sg(Z_a − o_z)"
    arms = [Arm(c, method("conj_center")), Arm(r, method("conj_residual"))]
    return Experiment(
        "zhang-f4", "ZHANG", "Fig. 4, Conjecture 1", "−Z·sg(o) raises m_o; −Z·sg(Z − o) raises m_r", arms,
        # ZHANG §3.1: "the gradient component o_z has the effect of increasing m_o while decreasing m_r. On the
        # contrary, r_a helps increase m_r while decreasing m_o." For unit vectors m_o² + m_r² = 1 (‖o‖² plus the
        # mean squared residual), so each "while decreasing" follows from the rise before it: sanity checks.
        [Claim("The center gradient −Z_a·sg(o_z) raises m_o", [c], R.changes(c, "m_o", "up")),
         Claim("The residual gradient −Z_a·sg(Z_a − o_z) raises m_r", [r], R.changes(r, "m_r", "up")),
         Claim("... and the center gradient lowers m_r (implied by m_o rising: m_o² + m_r² = 1)", [c],
               R.changes(c, "m_r", "down"), kind="sanity"),
         Claim("... and the residual gradient lowers m_o (implied by m_r rising)", [r], R.changes(r, "m_o", "down"), kind="sanity")],
        [M_O, M_R, STD],
        figures=[Figure("curve", "m_o.png", "m_o over training (ZHANG Fig. 4)", {"measure": "m_o"}),
                 Figure("curve", "m_r.png", "m_r over training (ZHANG Fig. 4)", {"measure": "m_r"})],
        base={"diag": {"every_steps": 2}}, scale_overrides={"smoke": with_(NO_FINAL_BN, {"optim": {"epochs": 5}})},
        seeds=SEEDS, notes=COLLAPSE_NOTES, smoke_minutes=2)


def _surgery(exp_id, item, expected, name, paper_rows, extra_claims, columns, **kw) -> Experiment:
    arms = [Arm(label, method(name, keep=keep), paper) for label, keep, paper in paper_rows]
    claims = []
    for label, _, paper in paper_rows:
        rule = R.collapses(label) if paper.get("fails") == "yes" else R.trains(label)
        claims.append(Claim(f"{label}: {'collapses' if paper.get('fails') == 'yes' else 'trains without collapse'} "
                            f"({item.split(',')[0]})", [label], rule))
    return Experiment(exp_id, "ZHANG", item, expected, arms, claims + extra_claims, columns,
                      figures=[STD_CURVE, KNN_CURVE], **kw)


def t3() -> Experiment:
    rows = [
        ("Baseline (o_e and r_e)", "both", {"std_raw": 0.020, "m_o": 0.026, "m_r": 0.99, "fails": "no", "knn": 36.21}),
        ("Removing r_e", "o_e", {"std_raw": 0.02005, "m_o": 0.026, "m_r": 0.99, "fails": "no", "knn": 47.41}),
        ("Removing o_e", "r_e", {"std_raw": 0, "m_o": 1, "m_r": 0, "fails": "yes", "knn": 1}),
    ]
    # ZHANG §3.3: "the component beneficial for preventing collapse inside G_e is o_e instead of r_e ... r_e does
    # not prevent collapse and keeping r_e even decreases the performance (36.21% < 47.41%)".
    better = Claim("Removing r_e is better than keeping it (36.21 < 47.41, paired)", ["Removing r_e", "Baseline (o_e and r_e)"],
                   R.greater("Removing r_e", "Baseline (o_e and r_e)", "knn"))
    return _surgery("zhang-t3", "Table 3, triplet surgery", "keep both: ok; remove r_e: ok and better; remove o_e: collapse",
                    "triplet_surgery", rows, [better], [STD_RAW, M_O, M_R, COLLAPSE, KNN],
                    scale_overrides={"smoke": with_(NO_FINAL_BN, {"optim": {"epochs": 20}})},
                    seeds=SEEDS, notes=COLLAPSE_NOTES, smoke_minutes=6)


# ZHANG Table 4's labels: ✓ keeps the component of the extra gradient G_e = Z_b − P_b, ✗ removes it.
T4_ROWS = [
    ("o_e ✓ r_e ✓", "both", {"fails": "no", "knn": 66.62}),
    ("o_e ✓ r_e ✗", "o_e", {"fails": "no", "knn": 48.08}),
    ("o_e ✗ r_e ✓", "r_e", {"fails": "no", "knn": 66.15}),
    ("o_e ✗ r_e ✗", "none", {"fails": "yes", "knn": 1}),
]


def t4() -> Experiment:
    both, oe, re_ = (r[0] for r in T4_ROWS[:3])
    # ZHANG §3.4: "the model collapses when both components in G_e are removed and the best performance is achieved
    # when both components are kept. Interestingly, the model does not collapse when either o_e or r_e is kept."
    # Table 4 puts both (66.62) 0.47 above r_e alone (66.15): "best" is read as non-inferior to each single-
    # component arm by 1 point (each paired difference's interval above −1).
    best = Claim("Keeping both components is best: no single-component arm above it by 1 point or more (paired)",
                 [both, oe, re_], R.at_least_best_of(both, [oe, re_], "knn", 1.0))
    note = (" The projector keeps ZHANG A.1's final BN: the arm without o_e and r_e collapses on the tensor its loss acts "
            "on (P, √d·std(P) → 0) while z, under the BN, cannot become constant; the collapse verdict sees that.")
    return _surgery("zhang-t4", "Table 4, SimSiam surgery", "both best; o_e only ok; r_e only ok; neither: collapse",
                    "simsiam_surgery", T4_ROWS, [best], [COLLAPSE, STD, P_STD, KNN],
                    seeds=SEEDS, notes={**NOTES, "smoke": NOTES["smoke"] + note}, smoke_minutes=9)


def f5a() -> Experiment:
    # ZHANG Fig. 5a: the cosine between o_e − η·o and o crosses zero near η_p ≈ −0.5 (SimSiam, anchor P) and
    # η_z ≈ 0.2 (Mirror SimSiam, anchor Z). Rule: the end-of-training zero crossing (mean of the last three
    # diagnostic logs) has the paper's sign and lies within a factor of two of the paper's value.
    arms = [Arm("SimSiam", SIMSIAM, {"eta": -0.5}), Arm("Mirror SimSiam", method("mirror", variant="symmetric"), {"eta": 0.2})]
    eta = Column("eta", "η* (zero crossing, end of training)", 3)
    return Experiment(
        "zhang-f5a", "ZHANG", "Fig. 5a, η-scan", "SimSiam η_p < 0 (≈ −0.5); Mirror η_z > 0 (≈ 0.2)", arms,
        [Claim("SimSiam: o_e holds ≈ −0.5·o_p at the end of training (η_p* in [−1, −0.25])", ["SimSiam"], magnitude("SimSiam", "eta", -0.5)),
         Claim("Mirror SimSiam: o_e holds ≈ +0.2·o_z at the end of training (η_z* in [0.1, 0.4])", ["Mirror SimSiam"],
               magnitude("Mirror SimSiam", "eta", 0.2))],
        [eta, Column("eta_mean", "η* (mean over training)", 3), COLLAPSE, KNN], seeds=SEEDS,
        figures=[Figure("eta_scan", "eta_scan.png", "cos(o_e − η·o, o) against η (ZHANG Fig. 5a), end of training", {}),
                 Figure("curve", "eta.png", "zero crossing η* over training", {"measure": "eta", "ylabel": "η*"})],
        notes=NOTES, smoke_minutes=6)


# ZHANG Fig. 5b: SimSiam 5 epochs, the collapsing loss (eq. 1) 1 epoch, then the de-correlation loss alone
# (A.6, unweighted). One CIFAR-100 epoch is PAPER_EPOCH_STEPS = 195 optimizer steps; the smoke subset has 39
# steps per epoch, so the phases are scaled to the same numbers of steps: 25, 5 and 5 epochs.
F5B_PHASES = {"tiny": (1, 2, 3), "smoke": (25, 30, 35), "paper": (5, 6, 11)}


def _phases(e1: int, e2: int) -> dict:
    return {"phases": [{"epoch": 0, "method": {"name": "simsiam"}},
                       {"epoch": e1, "method": {"name": "naive"}},
                       {"epoch": e2, "method": {"name": "decorrelation"}}]}


def f5b() -> Experiment:
    label = "SimSiam → collapsing loss → de-correlation"
    by_scale = {s: [Arm(label, _phases(e1, e2))] for s, (e1, e2, _) in F5B_PHASES.items()}
    e1, e2, end = F5B_PHASES["smoke"]
    note = (f" Phases scaled to the paper's step counts: SimSiam {e1} epochs, the collapsing loss {e2 - e1} epochs "
            f"({(e2 - e1) * 39} steps ≈ one CIFAR-100 epoch of {PAPER_EPOCH_STEPS} steps), then de-correlation alone "
            f"(ZHANG A.6, unweighted); 'quickly' is read as within one paper epoch ({PAPER_EPOCH_STEPS} steps), which "
            "also leaves SGD momentum (0.9: the collapsing loss's velocity has decayed to 10 % after 22 steps) time to "
            "forget the collapse phase. Constant lr (the paper's cosine schedule is flat at epoch 5 of 1000).")
    return Experiment(
        "zhang-f5b", "ZHANG", "Fig. 5b, phases", "de-correlation alone lifts m_r quickly after a collapse phase", by_scale["smoke"],
        [Claim("After a collapse phase, the de-correlation loss alone lifts m_r quickly (half the drop back within one "
               "paper epoch of steps)", [label], recovery_rule(label))],
        [M_R, M_O, STD, COV],
        figures=[Figure("curve", "m_r.png", "m_r through the three phases (dotted: phase switches)", {"measure": "m_r", "vlines": [e1, e2]}),
                 Figure("curve", "m_o.png", "m_o through the three phases", {"measure": "m_o", "vlines": [e1, e2]}),
                 Figure("curve", "cov.png", "covariance term (A.6) through the three phases", {"measure": "cov", "logy": True, "vlines": [e1, e2]})],
        base={"diag": {"every_steps": 3}},
        scale_overrides={"tiny": {"optim": {"epochs": F5B_PHASES["tiny"][2]}},
                         "smoke": with_(NO_FINAL_BN, {"optim": {"epochs": end, "schedule": "constant"}}),
                         "paper": {"optim": {"epochs": F5B_PHASES["paper"][2]}}},
        arms_by_scale=by_scale, seeds=SEEDS, notes={**COLLAPSE_NOTES, "smoke": COLLAPSE_NOTES["smoke"] + note}, smoke_minutes=6)


TAUS = [0.05, 0.1, 0.2, 0.5, 1.0]


def _tau_arms() -> list:
    return [Arm(f"τ = {t:g}", method("simclr", tau=t), x=t) for t in TAUS]


def f5c() -> Experiment:
    arms = _tau_arms()
    labels = [a.label for a in arms]
    return Experiment(
        "zhang-f5c", "ZHANG", "Fig. 5c, InfoNCE τ", "cos(r_e, ∇decor) high, peak near τ 0.1–0.2; o_e low", arms,
        # ZHANG §4: "their gradient similarity is high for a wide range of temperature values, especially when τ is
        # around 0.1 or 0.2 ... Replacing r_e with o_e leads to a low cosine similarity".
        [Claim("cos(r_e, −∇decor) exceeds cos(o_e, −∇decor) at every τ (per run, paired)", labels,
               R.each_greater(labels, "cos_re_decor_mean", "cos_oe_decor_mean")),
         Claim("cos(r_e, −∇decor) peaks at τ = 0.1 or 0.2 (the better of them above the best other τ, paired)", labels,
               R.argmax_among(labels, "cos_re_decor_mean", ["τ = 0.1", "τ = 0.2"]))],
        [Column("cos_re_decor_mean", "cos(r_e, ∇decor)", 3), Column("cos_oe_decor_mean", "cos(o_e, ∇decor)", 3), KNN],
        figures=[Figure("sweep", "cos_re.png", "cos(r_e, −∇ de-correlation loss) against τ (ZHANG Fig. 5c)", {"measure": "cos_re_decor_mean", "logx": True, "xlabel": "τ", "ylabel": "cos(r_e, −∇L_decor)"}),
                 Figure("sweep", "cos_oe.png", "cos(o_e, −∇ de-correlation loss) against τ", {"measure": "cos_oe_decor_mean", "logx": True, "xlabel": "τ", "ylabel": "cos(o_e, −∇L_decor)"})],
        sweep="τ", seeds=SEEDS, notes=NOTES, smoke_minutes=16)


def f6() -> Experiment:
    s, i, n = "SimSiam", "InfoNCE", "InfoNCE without r_e"
    arms = [Arm(s, SIMSIAM), Arm(i, method("simclr", tau=0.2)), Arm(n, method("infonce_surgery", keep="o_e", temperature=0.2))]
    return Experiment(
        "zhang-f6", "ZHANG", "Fig. 6", "SimSiam and InfoNCE lower covariance; InfoNCE without r_e keeps it high and loses accuracy", arms,
        # ZHANG §3.5: "except in the first few epochs, SimSiam decreases the covariance during the whole training";
        # §4: "InfoNCE also decreases the covariance value during training ... Removing r_e from the InfoNCE loss
        # leads to a high covariance value during the whole training. Removing r_e also leads to a significant
        # performance drop".
        [Claim("SimSiam lowers the covariance after the first epochs (end ≤ 0.8 × peak)", [s], below_peak(s, "cov", 0.8)),
         Claim("InfoNCE lowers the covariance after the first epochs (end ≤ 0.8 × peak)", [i], below_peak(i, "cov", 0.8)),
         Claim("Without r_e, InfoNCE ends with a higher covariance (paired)", [n, i], R.greater(n, i, "cov")),
         Claim("Without r_e, InfoNCE loses accuracy (paired)", [n, i], R.greater(i, n, "knn"))],
        [COV, Column("cov_max", "peak covariance", 4), M_R, KNN],
        figures=[Figure("curve", "cov.png", "covariance term (ZHANG A.6) over training (ZHANG Fig. 6)", {"measure": "cov", "logy": True, "ylabel": "covariance term (A.6)"}),
                 Figure("curve", "m_r.png", "m_r over training", {"measure": "m_r"}), KNN_CURVE],
        seeds=SEEDS, notes=NOTES, smoke_minutes=10)


def f7() -> Experiment:
    arms = _tau_arms()
    labels = [a.label for a in arms]
    return Experiment(
        "zhang-f7", "ZHANG", "Fig. 7, temperature", "entropy of λ and covariance rise with τ; accuracy falls at high τ", arms,
        # ZHANG §4: "a higher temperature makes the weight distribution of λ_i more balanced indicated a higher
        # entropy of λ_i" (a property of the softmax: sanity check); "a higher temperature also tends to increase the
        # covariance value"; A.7: "a higher temperature tends to decrease the effect of de-correlation, indicated by a
        # higher covariance value, which also leads to a performance drop".
        [Claim("The entropy of the InfoNCE weights λ_i rises with τ (Spearman ρ ≥ 0.6) — a property of the softmax "
               "temperature, checked as a measurement sanity check", labels, R.trend(labels, "entropy_mean", +1), kind="sanity"),
         Claim("The covariance rises with τ (per-seed Spearman ρ ≥ 0.6)", labels, R.trend(labels, "cov", +1)),
         Claim("Accuracy falls at high τ (the largest τ is > 1 point below the best, paired)", labels, falls_at_high(labels, "knn", 1.0))],
        [Column("entropy_mean", "entropy of λ", 3), COV, KNN],
        figures=[Figure("sweep", "entropy.png", "entropy of λ_i against τ (ZHANG Fig. 7a)", {"measure": "entropy_mean", "logx": True, "xlabel": "τ", "ylabel": "entropy of λ_i"}),
                 Figure("sweep", "knn_tau.png", "kNN top-1 against τ (ZHANG Fig. 7b)", {"measure": "knn", "logx": True, "xlabel": "τ", "ylabel": "kNN top-1 %"}),
                 Figure("sweep", "cov_tau.png", "covariance against τ (ZHANG Fig. 7c)", {"measure": "cov", "logx": True, "xlabel": "τ", "ylabel": "covariance term (A.6)"})],
        sweep="τ", seeds=SEEDS, scale_overrides={"paper": {"optim": {"epochs": 200}}}, notes=NOTES, smoke_minutes=16)


def t5() -> Experiment:
    arms = [
        Arm("Non-linear MLP", method("simsiam", predictor="mlp"), {"knn": 66.9, "fails": "no"}),
        Arm("FC+FC+Bias", method("simsiam", predictor="fc_fc_bias", normalize_input=True), {"knn": 66.7, "fails": "no"}),
        Arm("Tanh(FC)", method("simsiam", predictor="tanh_fc", normalize_input=True), {"knn": 64.82, "fails": "no"}),
        Arm("Bias", method("simsiam", predictor="bias", normalize_input=True), {"knn": 49.82, "fails": "no"}),
    ]
    labels = [a.label for a in arms]
    # ZHANG §5: "Table 5 shows that they achieve performance comparable to that with a non-linear MLP"; "A predictor
    # with a single bias layer can be utilized for preventing collapse (see Table 5)"; Table 5: 66.9, 66.7, 64.82, 49.82.
    claims = [Claim(f"SimSiam with a {lab} predictor trains without collapse", [lab], R.trains(lab)) for lab in labels]
    claims += [Claim("FC+FC+Bias is comparable to the MLP predictor (paired difference within ±2 points)", labels[:2],
                     R.close(labels[0], labels[1], "knn", 2.0)),
               Claim("FC+FC+Bias > Tanh(FC) > Bias (each step paired)", labels[1:], R.ordered(labels[1:], "knn"))]
    return Experiment("zhang-t5", "ZHANG", "Table 5, predictors", "MLP ≈ FC+FC+Bias > Tanh(FC) > Bias, none collapse", arms, claims,
                      [COLLAPSE, STD, P_STD, KNN], figures=[Figure("bars", "knn.png", "kNN top-1 per predictor (ZHANG Table 5)", {"measure": "knn"}), STD_CURVE],
                      seeds=SEEDS, notes=NOTES, smoke_minutes=14)


def t6() -> Experiment:
    b, m = "Single bias (l2-normalized input)", "Last bias of the MLP"
    arms = [Arm(b, method("simsiam", predictor="bias", normalize_input=True), {"bias_center_learned": 0.99}),
            Arm(m, method("simsiam", predictor="mlp"), {"bias_center_learned": 0.89})]
    note = (" Measured on the learned part of each bias, b − b_0 (b_0: the bias of the same network rebuilt at "
            "initialization with the run's seed), against the center vector o_z = E[Z] (ZHANG §3) estimated over an "
            "augmented view of every training image in training mode: PyTorch initializes the MLP's last bias uniformly "
            "in ±1/√64, a vector as long as what training adds, and only weight decay removes it, over far more steps "
            "than this scale has; the single bias starts at 0. The live curve (whole bias against each training "
            "batch's center) is noisy: with batch 128 and the BN-centered projector the batch center is mostly "
            "sampling noise (of the order of 1/√128 ≈ 0.09).")
    return Experiment(
        "zhang-t6", "ZHANG", "Table 6, bias vs center", "cosine ≈ 0.99 (single bias), ≈ 0.89 (MLP last bias)", arms,
        # ZHANG §5: "the trained bias vector is found to have a cosine similarity of 0.99 with the center vector (see
        # Table 6). A bias in the MLP predictor also has a high cosine similarity of 0.89".
        [Claim("The single bias aligns with the center vector (cosine of its learned part > 0.9)", [b], R.compare(b, "bias_center_learned", ">", 0.9)),
         Claim("The MLP's last bias aligns with it too (cosine of its learned part > 0.7)", [m], R.compare(m, "bias_center_learned", ">", 0.7))],
        [Column("bias_center_learned", "cos(b − b_0, center)", 3), Column("bias_center_end", "cos(b, center)", 3),
         Column("bias_init_share", "cos(b, b_0)", 3), COLLAPSE, KNN],
        figures=[Figure("curve", "bias_center.png", "cosine between the predictor bias (whole) and the center vector over training", {"measure": "bias_center"})],
        probe="bias", seeds=SEEDS, notes={**NOTES, "smoke": NOTES["smoke"] + note}, smoke_minutes=7)


def f9() -> Experiment:
    arms = [Arm("SimSiam", SIMSIAM, {"fails": "no"}), Arm("BN + MSE", method("bn_mse"), {"fails": "no"})]
    return Experiment(
        "zhang-f9", "ZHANG", "Fig. 9, BN + MSE", "no collapse, below SimSiam", arms,
        # ZHANG App. B: "such BN can help alleviate collapse with a simple MSE loss (see Fig. 9), however, its
        # performance is inferior to the cosine loss-based SimSiam (with predictor and stop gradient)". Its final BN
        # keeps z's spread by construction, so "trains" reads the effective rank and the gain over random init.
        [Claim("BN + MSE (no predictor, no stop-gradient) trains without collapse", ["BN + MSE"], R.trains("BN + MSE")),
         Claim("BN + MSE is below SimSiam (paired)", ["SimSiam", "BN + MSE"], R.greater("SimSiam", "BN + MSE", "knn"))],
        [COLLAPSE, STD, KNN], figures=[KNN_CURVE, STD_CURVE], seeds=SEEDS,
        notes=NOTES, smoke_minutes=5)


EXPERIMENTS = [t1, t2, f3, f4, t3, t4, f5a, f5b, f5c, f6, f7, t5, t6, f9]
