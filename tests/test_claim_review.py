"""ISSUE 19.2–19.3 on the catalogue's own claims: "trains" is no complete collapse plus a gain over random init,
dimensional collapse decides only where the spread cannot fail by construction (and there as a single dimension,
not K − 1), and claims that hold by construction are sanity checks. Runs are constructed; the claims are the
experiments' own, evaluated as `siamlab reproduce` evaluates them."""
from __future__ import annotations

from siamlab.experiments import get
from siamlab.experiments import rules as R
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.outputs import evaluate_claims
from siamlab.experiments.results import Results
from siamlab.experiments.stats import UNDECIDABLE


def run(label, seed, knn, init, std=0.9, loss_on_p=None, erank=None):
    diag = {"std_scaled": std, "m_r": 0.9, **({} if loss_on_p is None else {"loss_on_p": float(loss_on_p)})}
    final = {"knn_backbone": knn, **({} if erank is None else {"erank_projector": erank})}
    hist = [{"kind": "diag", "epoch": e, **diag} for e in (1, 2, 3)] + [{"kind": "eval", "epoch": 3, **final}]
    summ = {"status": "completed", "final": final, "random_init": {"knn_backbone": init}}
    return RunRecord(label, seed, "completed", summary=summ, history=hist)


def results(exp_id, records):
    exp = get(exp_id)
    return Results(exp, records, "smoke")


def test_trains_needs_a_gain_over_random_init_not_k_minus_one_dimensions():
    """ISSUE 19.4: bridge-t4's BRIDGE arm (√d·std 0.93, +1.75 kNN over random init) failed "trains" on effective rank
    7.2 < K − 1; its BYOL arm (+0.65) passed. With the papers' criterion the first trains and the second does not."""
    bridge = [run("BRIDGE (ours)", s, 74.9 + 0.1 * s, 73.1, std=0.93, loss_on_p=0, erank=7.2 + 0.1 * s) for s in range(3)]
    byol = [run("BYOL", s, 73.7 + 0.05 * s, 73.1, loss_on_p=1, erank=30.0) for s in range(3)]
    res = results("bridge-t4", bridge + byol)
    v = R.trains("BRIDGE (ours)")(res)
    assert v.state is True and "standardization" in v.why  # STD: read through the effective rank, floor 2
    v = R.trains("BYOL")(res)
    assert v.state is False and "gain" in v.quantity and v.value < 1.0


def test_the_spread_is_judged_by_construction_only_where_it_cannot_fail():
    f9 = results("zhang-f9", [run("BN + MSE", s, 80.0, 70.0, erank=5.0 + s) for s in range(3)]  # no P: loss on z
                 + [run("SimSiam", s, 82.0, 70.0, loss_on_p=1) for s in range(3)])
    assert "final BN" in R.spread_by_construction(f9, "BN + MSE") and R.spread_by_construction(f9, "SimSiam") == ""
    assert R.trains("BN + MSE")(f9).state is True
    flat = results("zhang-f9", [run("BN + MSE", s, 80.0, 70.0, erank=1.1 + 0.05 * s) for s in range(3)])
    assert R.trains("BN + MSE")(flat).state is False  # a single dimension: Conjecture 2's collapse
    t3 = results("bridge-t3", [])
    assert R.spread_by_construction(t3, "Cov=0 + STD") and R.spread_by_construction(t3, "Cov=0") == ""
    t2 = results("zhang-t2", [run("Naive Siamese", s, 70.0, 70.0, loss_on_p=0) for s in range(3)])
    assert R.spread_by_construction(t2, "Naive Siamese") == ""  # smoke drops the final BN: the margin decides


def test_collapse_is_complete_collapse_over_seeds():
    collapsed = results("zhang-t2", [run("Naive Siamese", s, 10.0, 70.0, std=0.01 + 0.005 * s) for s in range(3)])
    assert R.collapses("Naive Siamese")(collapsed).state is True
    hovering = results("zhang-t2", [run("Naive Siamese", s, 60.0, 70.0, std=v) for s, v in enumerate((0.063, 0.124, 0.075, 0.101, 0.113))])
    v = R.collapses("Naive Siamese")(hovering)  # center-f4's flip at the 0.1 threshold: no verdict either way
    assert v.state == UNDECIDABLE and v.threshold == 0.0 and v.seeds == 5


def test_claims_that_hold_by_construction_are_sanity_checks():
    f4 = get("zhang-f4")
    assert [c.kind for c in f4.claims] == ["claim", "claim", "sanity", "sanity"]
    c, r = (a.label for a in f4.arms)
    recs = [RunRecord(lab, s, "completed", summary={"status": "completed"},
                      history=[{"kind": "diag", "epoch": e, "m_o": mo(e) + 0.01 * s, "m_r": (1 - (mo(e) + 0.01 * s) ** 2) ** 0.5,
                                "std_scaled": 0.5} for e in (1, 2, 3, 4)])
            for lab, mo in ((c, lambda e: 0.2 * e), (r, lambda e: 0.8 - 0.2 * e)) for s in range(3)]
    out = evaluate_claims(f4, Results(f4, recs, "smoke"))
    assert [x["verdict"] for x in out] == ["reproduced", "reproduced", "sanity check passed", "sanity check passed"]
    assert get("zhang-f7").claims[0].kind == "sanity"


def test_every_experiment_starts_with_seeds_enough_for_an_interval_and_counts_a_claim():
    from siamlab.experiments import all_experiments

    for exp in all_experiments():
        assert exp.seeds["smoke"] >= 3, exp.id  # one seed has no interval; three give t = 4.3
        assert any(c.kind == "claim" for c in exp.claims), exp.id
