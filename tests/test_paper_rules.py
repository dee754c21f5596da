"""Verdict rules of the CENTER, GEN and BRIDGE experiments on constructed runs (issue 11, point 3).

Each rule was written from its paper before any run at the new smoke scale; every one gets a history
that must pass and one that must fail (and, for accuracy claims, one that is undecidable because the
arms do not beat random init). GEN Table 1's rule is checked against GEN's own table.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siamlab.experiments import get
from siamlab.experiments.papers import center, gen
from siamlab.experiments.papers import bridge as bridge_exp
from siamlab.experiments.gates import UNDECIDABLE
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.probes import eigen_clustered, matrix_stats, sym_eigenvalues
from siamlab.experiments.results import Results
from siamlab.experiments.scales import arm_config
from siamlab.experiments.spec import Arm, Column, Experiment

HEALTHY = {"collapsed": False, "dimensional": False}


def run(label, seed=0, final=None, init=None, evals=(), diag=(), verdict=HEALTHY, probe=None):
    """A finished run: final / random-init eval dicts (projector keys), eval rows (epoch, {key: v}), diag rows."""
    hist = [{"kind": "eval", "epoch": e, **vals} for e, vals in evals]
    hist += [{"kind": "diag", "epoch": e, **vals} for e, vals in diag]
    summ = {"status": "completed", "final": dict(final or {}), "random_init": dict(init or {}), "verdict": dict(verdict)}
    return RunRecord(label, seed, "completed", summary=summ, history=hist, probe=dict(probe or {}))


def results(records, arms):
    return Results(Experiment("t", "P", "i", "e", arms, [], [Column("knn", "knn")]), records)


# --- GEN Table 1: kNN on f falls faster per halving of d below 2K than above -----------------------
GEN_TABLE1 = {  # GEN Table 1: d -> (BT CIFAR-10, BT CIFAR-100, SimSiam CIFAR-10, SimSiam CIFAR-100)
    2048: (85.61, 53.30, 88.15, 55.01), 1024: (84.60, 52.54, 88.18, 54.50), 512: (82.79, 48.75, 87.63, 54.74),
    256: (81.05, 45.22, 85.99, 54.12), 128: (78.94, 40.67, 85.78, 53.84), 64: (77.19, 36.25, 85.05, 52.91),
    32: (72.73, 33.34, 84.56, 51.63), 16: (67.94, 29.62, 83.20, 48.14), 8: (62.49, 25.17, 82.14, 44.45),
    4: (57.16, 21.13, 76.05, 28.30),
}


@pytest.mark.parametrize("col,k", [(0, 10), (1, 100), (2, 10), (3, 100)])
def test_gen_t1_rule_holds_on_gens_own_table(col, k):
    below, above, ref = gen.halving_slopes({d: v[col] for d, v in GEN_TABLE1.items()}, k)
    assert ref == (32 if k == 10 else 256)
    assert below > above + gen.STEEPER_BY


def sweep(name, knn_of_d, init=20.0, seeds=3, jitter=0.3):
    arms = [Arm(f"{name}, d={d}", x=d, group=name) for d in knn_of_d]
    recs = [run(a.label, s, {"knn_projector": knn_of_d[a.x] + jitter * (s - 1)}, {"knn_projector": init})
            for a in arms for s in range(seeds)]
    return results(recs, arms)


def test_gen_t1_rule_passes_and_fails_on_constructed_sweeps():
    dims = [4, 8, 16, 32, 64, 128]
    paper_like = {d: GEN_TABLE1[d][0] for d in dims}  # GEN's Barlow Twins, CIFAR-10, at the smoke dimensions
    assert gen.steeper_below_2k("BT")(sweep("BT", paper_like))[0] is True
    even = {d: 50 + 3 * math.log2(d) for d in dims}  # falls at the same rate everywhere
    assert gen.steeper_below_2k("BT")(sweep("BT", even))[0] is False
    flat = {d: 70.0 for d in dims}
    assert gen.steeper_below_2k("BT")(sweep("BT", flat))[0] is False
    ok, why = gen.steeper_below_2k("BT")(sweep("BT", paper_like, init=80.0))  # every arm below random init
    assert ok == UNDECIDABLE and "random init" in why
    ok, why = gen.steeper_below_2k("BT")(sweep("BT", {d: 70.0 + 0.2 * (d < 20) for d in dims}, seeds=1))
    assert ok == UNDECIDABLE and "seed" in why  # a one-seed sweep whose margin sits inside the test-set noise


def test_gen_f3_correlation_rule():
    dims = [4, 8, 16, 32, 64, 128]
    arms = [Arm(f"S, d={d}", x=d, group="S") for d in dims]

    def res(sign):
        recs = [run(a.label, s, {"knn_projector": 60 + 4 * math.log2(a.x), "l_bound_projector": 1 + sign * 0.1 * math.log2(a.x)},
                    {"knn_projector": 20.0}) for a in arms for s in range(3)]
        return results(recs, arms)

    assert gen.correlated_above_k("S")(res(-1))[0] is True
    assert gen.correlated_above_k("S")(res(+1))[0] is False


def trajectory(label, lb, kn, init=20.0, seed=0):
    evals = [(0, {"l_bound_projector": 3.0, "knn_projector": init, "random_init": True})]
    evals += [(e, {"l_bound_projector": a, "knn_projector": b}) for e, (a, b) in enumerate(zip(lb, kn), 1)]
    return run(label, seed, {"knn_projector": kn[-1], "l_bound_projector": lb[-1]}, {"knn_projector": init}, evals)


def test_gen_f4_trajectory_rule():
    lb = [1.0 - 0.05 * e for e in range(12)]
    up = [50 + 2 * e + (e % 2) for e in range(12)]
    arm = [Arm("S, d=64", x=64, group="S")]

    def seeds(kn, init=20.0):
        return results([trajectory("S, d=64", [v + 0.01 * s for v in lb], [v + 0.3 * s for v in kn], init, s) for s in range(3)], arm)

    assert gen.trajectory_rule("S, d=64")(seeds(up))[0] is True
    down = list(reversed(up))  # kNN falls while L_bound falls
    assert gen.trajectory_rule("S, d=64")(seeds(down))[0] is False
    ok, _ = gen.trajectory_rule("S, d=64")(seeds(up, init=90.0))
    assert ok == UNDECIDABLE
    assert gen.trajectory_rule("S, d=64")(results([trajectory("S, d=64", lb, up)], arm))[0] == UNDECIDABLE  # one seed


def test_gen_claims_read_the_projector_output():
    for exp_id in ("gen-t1", "gen-f3", "gen-f4"):
        keys = {c.key for c in get(exp_id).columns}
        assert "knn_proj" in keys, exp_id


# --- BRIDGE Fig. 1: ‖Σ − I‖² falls over training (not: end below random init) ----------------------
def sigma_run(label, values, init, seed=0):
    evals = [(0, {"sigma_i_projector": init, "random_init": True})]
    evals += [(2 * e, {"sigma_i_projector": v}) for e, v in enumerate(values, 1)]
    return run(label, seed, {"sigma_i_projector": values[-1]}, {"sigma_i_projector": init}, evals)


def test_bridge_f1_rule_reads_the_trend_after_the_first_evaluation():
    arm = [Arm("A")]

    def seeds(values, init):
        return results([sigma_run("A", [v * (1 + 0.02 * s) for v in values], init, s) for s in range(3)], arm)

    falling = [5.0 * 0.8 ** e + 0.05 * (e % 2) for e in range(10)]
    assert bridge_exp.falls_over_training("A")(seeds(falling, init=1.0))[0] is True
    # far below a (BN-statistics-dominated) random-init value, yet rising during training: must fail
    rising = [0.5 + 0.05 * e for e in range(10)]
    assert bridge_exp.falls_over_training("A")(seeds(rising, init=9.0))[0] is False
    ok, why = bridge_exp.falls_over_training("A")(results([sigma_run("A", falling[:3], init=9.0)], arm))
    assert ok is None and "needs 5" in why


# --- BRIDGE Figs. 3–4: the learned part ΔW = W_p − W_p(0) -------------------------------------------
def test_bridge_f3_statistics_of_the_learned_part():
    g = torch.Generator().manual_seed(0)
    d = 64
    w0 = torch.randn(d, d, generator=g) / math.sqrt(d) * 3  # a random init that dominates W_p
    learned = 0.3 * torch.eye(d) + 0.01 * torch.randn(d, d, generator=g)
    learned[d // 2:, d // 2:] -= 0.3 * torch.eye(d - d // 2)  # half the eigenvalues at c, half at 0
    stats, stats_w = matrix_stats(learned), matrix_stats(w0 + learned)
    assert stats["asym"] < bridge_exp.SYMMETRIC_BELOW < stats_w["asym"]
    assert stats["diag_share"] > bridge_exp.DIAGONAL_ABOVE > stats_w["diag_share"]
    assert eigen_clustered(sym_eigenvalues(learned)) > bridge_exp.CLUSTERED_ABOVE
    noise = torch.randn(d, d, generator=g)  # an unstructured ΔW fails all three
    s = matrix_stats(noise)
    assert s["asym"] == pytest.approx(math.sqrt(2), abs=0.1) and s["diag_share"] < 0.05
    assert eigen_clustered(sym_eigenvalues(noise)) < bridge_exp.CLUSTERED_ABOVE


def test_bridge_f3_claims_judge_delta_w():
    exp = get("bridge-f3")
    lab = exp.arms[0].label
    good = [run(lab, s, probe={"asym": 0.1 + 0.01 * s, "diag_share": 0.8 - 0.01 * s, "eig_clustered": 0.95, "asym_w": 1.2,
                                "diag_share_w": 0.05}) for s in range(3)]
    bad = [run(lab, s, probe={"asym": 1.4 - 0.01 * s, "diag_share": 0.02, "eig_clustered": 0.5 + 0.01 * s, "asym_w": 0.1,
                               "diag_share_w": 0.9}) for s in range(3)]
    assert all(c.rule(results(good, exp.arms))[0] is True for c in exp.claims)
    assert all(c.rule(results(bad, exp.arms))[0] is False for c in exp.claims)


def test_bridge_paper_scale_uses_the_authors_lars_trust_coefficient():
    exp = get("bridge-t4")
    assert arm_config(exp, exp.arm("BRIDGE (ours)"), "paper", 0)["optim"]["lars_eta"] == 0.001


# --- CENTER ---------------------------------------------------------------------------------------
def test_center_f6_center_is_judged_against_the_prototypes_own_center():
    lab = "SwAV (fixed random prototypes)"
    arm = [Arm(lab)]
    k = 300
    protos = torch.nn.functional.normalize(torch.randn(k, 256, generator=torch.Generator().manual_seed(1)), dim=1)
    base = float(protos.mean(0).norm())
    assert base == pytest.approx(1 / math.sqrt(k), rel=0.2)  # the finite-K center the rule allows for
    rule = center.center_near_prototypes(lab)
    ok = [run(lab, s, final={"m_o_projector": (1.5 + 0.05 * s) * base}, probe={"proto_center": base}) for s in range(3)]
    far = [run(lab, s, final={"m_o_projector": 0.2 + 0.01 * s}, probe={"proto_center": base}) for s in range(3)]  # the old fixed 0.2
    assert rule(results(ok, arm))[0] is True
    assert rule(results(far, arm))[0] is False


def momentum_results(growth_of_eps, seeds=3, knn_of_eps=None, init=20.0):
    arms = [Arm(f"ε = {m:g}", x=m) for m in center.MOMENTA["smoke"]]
    recs = []
    for a in arms:
        for s in range(seeds):
            diag = [(0.1, {"m_o": 0.6}), (5, {"m_o": 0.6 + growth_of_eps(a.x) + 0.01 * s})]
            knn = (knn_of_eps or (lambda m: 70.0))(a.x) + 0.2 * s
            recs.append(run(a.label, s, {"knn_backbone": knn}, {"knn_backbone": init}, diag=diag))
    return Results(Experiment("t", "P", "i", "e", arms, [], [Column("knn", "knn")], arms_by_scale={"smoke": arms}), recs, "smoke")


def test_center_f7_rules_take_one_rank_correlation_per_seed_and_read_growth_from_the_start():
    grows = center.momentum_trend("center", -1, growth=True)
    assert grows(momentum_results(lambda m: 0.3 * (1 - m)))[0] is True
    assert grows(momentum_results(lambda m: 0.3 * m))[0] is False
    ok, why = grows(momentum_results(lambda m: 0.3 * (1 - m), seeds=1))
    assert ok == UNDECIDABLE and "one seed" in why
    knn = center.momentum_trend("knn", +1)
    assert knn(momentum_results(lambda m: 0.0, knn_of_eps=lambda m: 50 + 20 * m))[0] is True
    assert knn(momentum_results(lambda m: 0.0, knn_of_eps=lambda m: 70 - 20 * m))[0] is False
    assert knn(momentum_results(lambda m: 0.0, knn_of_eps=lambda m: 50 + 20 * m, init=90.0))[0] == UNDECIDABLE


def center_runs(values, knn=80.0, init=70.0):
    return results([run("A", s, {"knn_backbone": knn + 0.2 * s}, {"knn_backbone": init},
                        diag=[(e, {"m_o": v}) for e in (1, 2, 3)]) for s, v in enumerate(values)], [Arm("A")])


def test_center_f4_collapse_is_read_from_centers_own_indicator():
    """ISSUE 19.2: SimSiam without stop-gradient on blobs had √d·std 0.063–0.124 around the 0.1 threshold while
    m_o ≥ 0.99 in every seed; CENTER's indicator, the center norm, decides it."""
    collapsed = center_runs([0.995, 0.992, 0.998, 0.991, 0.996])
    assert center.center_collapse("A", True)(collapsed)[0] is True
    assert center.center_collapse("A", False)(collapsed)[0] is False
    spread = center_runs([0.31, 0.35, 0.28])
    assert center.center_collapse("A", False)(spread)[0] is True and center.center_collapse("A", True)(spread)[0] is False
    assert center.center_collapse("A", False, "knn")(center_runs([0.31, 0.35, 0.28], knn=70.2))[0] is False  # no gain
    assert center.center_collapse("A", True)(center_runs([0.86, 0.95, 0.9]))[0] == UNDECIDABLE  # at the threshold


def test_center_claims_that_hold_by_construction_are_sanity_checks():
    kinds = {c.text: c.kind for e in ("center-f3", "center-f5", "center-f6") for c in get(e).claims}
    assert [k for t, k in kinds.items() if "does not collapse" in t] == ["sanity"] * 3
    assert kinds["The final BN removes the center: ‖center‖ after BN < before BN, in both runs (a train-mode BN zeroes the "
                 "batch mean)"] == "sanity"
    f4 = get("center-f4")
    assert len(f4.claims) == 6 and not any("larger center norm" in c.text for c in f4.claims)


def test_center_f7_has_enough_arms_and_seeds_for_a_rank_statistic():
    exp = get("center-f7")
    assert len(exp.arms_for("smoke")) >= 4 and exp.seeds["smoke"] >= 3
