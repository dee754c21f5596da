"""ZHANG's changed rules on synthetic histories: each must pass on a history that shows the paper's finding and
fail (or be undecidable, where the premise is missing) on one that does not. The rules are the experiments'
own claims (siamlab.experiments.papers.zhang), evaluated through Results as `siamlab reproduce` evaluates them."""
from __future__ import annotations

import pytest

from siamlab.experiments import get
from siamlab.experiments.gates import UNDECIDABLE
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.outputs import evaluate_claims, overall
from siamlab.experiments.results import Results
from siamlab.experiments.runner import slug
from siamlab.experiments.papers.zhang import F5B_PHASES, T4_ROWS


def run(label, seed=0, diag=(), probe=None, knn=80.0, init=70.0, steps_per_epoch=39, epochs=20):
    summ = {"status": "completed", "final": {"knn_backbone": knn}, "random_init": {"knn_backbone": init},
            "steps": steps_per_epoch * epochs, "epochs_done": epochs}
    return RunRecord(label, seed, "completed", summary=summ, history=[{"kind": "diag", **d} for d in diag], probe=probe or {})


def claim_states(exp_id, records, scale="smoke"):
    exp = get(exp_id)
    return [c["reproduced"] if c["verdict"] != "undecidable at this scale" else UNDECIDABLE
            for c in evaluate_claims(exp, Results(exp, records, scale))]


# --- Fig. 5a: end-of-training magnitudes ------------------------------------------------------------
def eta_run(label, values, seed=0):
    return run(label, seed, [{"epoch": e, "eta_star": v, "std_scaled": 0.9} for e, v in enumerate(values, 1)])


@pytest.mark.parametrize("simsiam, mirror, expected", [
    ([0.3, -0.2, -0.45, -0.5, -0.55], [0.0, 0.1, 0.2, 0.2, 0.25], [True, True]),  # the paper's −0.5 / +0.2 at the end
    ([-0.5, -0.5, -0.1, -0.1, -0.1], [0.2, 0.2, 0.6, 0.7, 0.8], [False, False]),  # right sign, magnitude off by > 2×
    ([-0.5, -0.5, 0.2, 0.3, 0.2], [0.2, 0.2, -0.1, -0.2, -0.1], [False, False]),  # sign flipped at the end
    ([-0.8, -0.8, -0.8, -0.05, -0.05, -0.05], [0.35, 0.35, 0.35, 0.02, 0.02, 0.02], [False, False]),  # only the mean over training is right
])
def test_f5a_reads_end_of_training_magnitudes(simsiam, mirror, expected):
    recs = [eta_run("SimSiam", simsiam, s) for s in range(3)] + [eta_run("Mirror SimSiam", mirror, s) for s in range(3)]
    assert claim_states("zhang-f5a", recs) == expected


# --- Fig. 5b: recovery within one paper epoch of steps ---------------------------------------------
def phases_run(drop_to, rise_to, rise_after_epochs, seed=0):
    e1, e2, end = F5B_PHASES["smoke"]
    diag = []
    for step in range(0, end * 39 + 1, 3):
        e = step / 39
        if e <= e1:
            m_r = 0.9
        elif e <= e2:
            m_r = 0.9 - (0.9 - drop_to) * min(1.0, (e - e1) / 1.0)  # falls within the first collapse epoch
        else:
            m_r = drop_to if e < e2 + rise_after_epochs else rise_to
        diag.append({"epoch": e, "m_r": m_r, "std_scaled": 0.5})
    return run("SimSiam → collapsing loss → de-correlation", seed, diag, epochs=end)


def three(drop_to, rise_to, rise_after):
    return [phases_run(drop_to + 0.01 * s, rise_to + 0.01 * s, rise_after, s) for s in range(3)]


def test_f5b_recovery_rule_passes_fails_and_needs_its_premise():
    assert claim_states("zhang-f5b", three(0.1, 0.6, 2.0)) == [True]  # back above half the drop after 78 steps
    assert claim_states("zhang-f5b", three(0.1, 0.6, 6.0)) == [False]  # only after 234 steps: not "very fast"
    assert claim_states("zhang-f5b", three(0.1, 0.3, 1.0)) == [False]  # regains 0.2 of a 0.8 drop
    assert claim_states("zhang-f5b", three(0.7, 0.9, 1.0)) == [UNDECIDABLE]  # m_r not halved: premise missing
    exp = get("zhang-f5b")
    (claim,) = evaluate_claims(exp, Results(exp, three(0.7, 0.9, 1.0), "smoke"))
    assert "premise failed" in claim["explanation"] and claim["more_seeds_could_decide"] is False
    mixed = three(0.1, 0.6, 2.0)[:2] + [phases_run(0.1, 0.3, 1.0, 2)]  # two seeds recover, one does not
    assert claim_states("zhang-f5b", mixed) == [UNDECIDABLE]
    assert claim_states("zhang-f5b", three(0.1, 0.6, 2.0)[:1]) == [UNDECIDABLE]  # one seed: no interval


def test_f5b_is_decided_by_the_seeds_that_logged_every_phase_and_names_the_seed_it_shows():
    def stopped_in_collapse_phase(seed):  # m_r logged in two phases only (e.g. the run stopped early)
        rec = phases_run(0.1, 0.6, 2.0, seed)
        rec.history = [h for h in rec.history if h["epoch"] <= F5B_PHASES["smoke"][1]]
        return rec

    exp = get("zhang-f5b")
    recs = [stopped_in_collapse_phase(0)] + [phases_run(0.1 + 0.01 * s, 0.6, 2.0, s) for s in (1, 2, 3)]
    (claim,) = evaluate_claims(exp, Results(exp, recs, "smoke"))
    assert claim["reproduced"] is True and claim["seeds"] == 3
    why = claim["explanation"]
    assert "(seed 1 of 3)" in why and "seed(s) 0 did not log m_r in every phase and are left out" in why
    (claim,) = evaluate_claims(exp, Results(exp, [stopped_in_collapse_phase(0), stopped_in_collapse_phase(1)], "smoke"))
    assert claim["reproduced"] is None and "not logged in every phase" in claim["explanation"]


def test_f5b_phases_match_the_papers_step_counts():
    e1, e2, end = F5B_PHASES["smoke"]
    assert (e2 - e1) * (5000 // 128) == 195 and e1 * (5000 // 128) == 5 * 195 and end - e2 == e2 - e1


# --- Table 6: learned part of the bias -------------------------------------------------------------
def test_t6_reads_the_learned_part_of_the_bias():
    b, m = "Single bias (l2-normalized input)", "Last bias of the MLP"
    good = [run(b, s, probe={"bias_center_learned": 0.97, "bias_center_end": 0.97}) for s in range(3)]
    good += [run(m, s, probe={"bias_center_learned": 0.85, "bias_center_end": 0.2}) for s in range(3)]
    assert claim_states("zhang-t6", good) == [True, True]
    # the whole MLP bias looks aligned (its init is small here) but what training put into it is not
    bad = good[:3] + [run(m, s, probe={"bias_center_learned": 0.3, "bias_center_end": 0.9}) for s in range(3)]
    assert claim_states("zhang-t6", bad) == [True, False]


# --- Fig. 7: the entropy claim is a sanity check ----------------------------------------------------
def tau_runs(entropy_sign, cov_sign, knn):
    recs = []
    for i, t in enumerate((0.05, 0.1, 0.2, 0.5, 1.0)):
        for s in range(3):
            diag = [{"epoch": e, "lambda_entropy": 3.0 + entropy_sign * i, "cov_term": 0.01 * (5 + cov_sign * i)} for e in (1, 2, 3)]
            recs.append(run(f"τ = {t:g}", s, diag, knn=knn[i] + 0.1 * s))
    return recs


def test_f7_entropy_is_a_sanity_check_and_never_counts():
    exp = get("zhang-f7")
    assert [c.kind for c in exp.claims] == ["sanity", "claim", "claim"]
    recs = tau_runs(+1, +1, [80, 81, 80, 78, 74])
    claims = evaluate_claims(exp, Results(exp, recs, "smoke"))
    assert [c["verdict"] for c in claims] == ["sanity check passed", "reproduced", "reproduced"]
    assert overall(claims, Results(exp, recs, "smoke"))[1].startswith("reproduced (2/2 claims; sanity checks 1/1")
    recs = tau_runs(-1, -1, [80, 81, 80, 80.5, 80.8])  # entropy falls (broken measurement), covariance falls, no drop
    claims = evaluate_claims(exp, Results(exp, recs, "smoke"))
    assert [c["verdict"] for c in claims] == ["sanity check failed", "not reproduced", "not reproduced"]


def test_f7_accuracy_claim_is_undecidable_below_random_init():
    recs = tau_runs(+1, +1, [69, 69.5, 69, 68, 60])  # every arm below its random init (70)
    assert claim_states("zhang-f7", recs)[2] == UNDECIDABLE


# --- Fig. 6: covariance falls after its peak ---------------------------------------------------------
def cov_run(label, values, seed=0, knn=80.0):
    return run(label, seed, [{"epoch": e, "cov_term": v, "std_scaled": 0.9} for e, v in enumerate(values, 1)], knn=knn)


def test_f6_covariance_rules_pass_and_fail():
    falls, flat, high = [0.01, 0.05, 0.03, 0.02, 0.02, 0.02], [0.01, 0.05, 0.05, 0.05, 0.05, 0.05], [0.1] * 6
    recs = [cov_run(lab, falls, s) for lab in ("SimSiam", "InfoNCE") for s in range(3)]
    recs += [cov_run("InfoNCE without r_e", high, s, knn=75.0) for s in range(3)]
    assert claim_states("zhang-f6", recs) == [True, True, True, True]
    recs = [cov_run("SimSiam", flat, s) for s in range(3)] + recs[3:]
    assert claim_states("zhang-f6", recs)[0] is False


# --- Table 4: four labels, four folders ------------------------------------------------------------
def test_t4_labels_map_to_four_folders_and_every_experiment_has_unique_folders():
    assert len({slug(label) for label, _, _ in T4_ROWS}) == 4
    from siamlab.experiments import all_experiments

    for exp in all_experiments():
        for scale in ("tiny", "smoke", "paper"):
            labels = [a.label for a in exp.arms_for(scale)]
            assert len({slug(lab) for lab in labels}) == len(labels), (exp.id, labels)
