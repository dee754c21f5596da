"""Undecidable claims (SPEC §4, issue 11 Build 2) and sanity checks (Build 5) on constructed runs.

Accuracy comparisons are decided only between arms that beat their random-init network; a margin within
twice the seed spread needs ≥ 3 seeds; a sanity check is listed but never counted as a reproduction.
"""
from __future__ import annotations

import json

import pytest

from siamlab.experiments import rules as R
from siamlab.experiments.catalogue import markdown_table, summary_counts, totals_line
from siamlab.experiments.gates import NOISE_FLOOR, UNDECIDABLE, beats_random_init
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.outputs import (NOT_REPRODUCED, REPRODUCED, SANITY_PASSED, UNDECIDABLE as UNDECIDABLE_WORD,
                                         evaluate_claims, overall, row_verdict, write_all)
from siamlab.experiments.results import Results
from siamlab.experiments.spec import Arm, Claim, Column, Experiment


def rec(label, knn, init, seed=0, std=0.9, cov=None):
    diag = [{"kind": "diag", "epoch": e, "std_scaled": std, "m_r": 0.9, **({"cov_term": cov} if cov is not None else {})}
            for e in (1, 2, 3)]
    summ = {"status": "completed", "final": {"knn_backbone": knn}, "random_init": {"knn_backbone": init}}
    return RunRecord(label, seed, "completed", summary=summ, history=diag)


def results(records, labels, claims=()):
    exp = Experiment("t", "P", "i", "e", [Arm(lab) for lab in labels], list(claims), [Column("knn", "knn")])
    return Results(exp, records)


def test_comparison_of_arms_below_random_init_is_undecidable():
    res = results([rec("A", 74.0, 75.0), rec("B", 70.0, 75.0)], ["A", "B"])
    ok, why = R.greater("A", "B", "knn")(res)
    assert ok == UNDECIDABLE and "does not beat random init" in why and "'A'" in why and "'B'" in why
    # the same accuracies with a weaker random-init network are decided
    res = results([rec("A", 74.0, 60.0), rec("B", 70.0, 60.0)], ["A", "B"])
    assert R.greater("A", "B", "knn")(res)[0] is True
    assert R.greater("B", "A", "knn")(res)[0] is False


def test_one_arm_below_random_init_is_enough_to_make_it_undecidable():
    res = results([rec("A", 80.0, 60.0), rec("B", 60.5, 60.0)], ["A", "B"])  # B gains 0.5 < the 1-point floor
    ok, why = R.greater("A", "B", "knn")(res)
    assert ok == UNDECIDABLE and "'B' does not beat" in why and "'A' does not beat" not in why


def test_gain_must_exceed_the_seed_spread():
    seeds = [rec("A", v, 70.0, seed=i) for i, v in enumerate((68.0, 74.0, 80.0))]  # gain 4, spread 6
    res = results(seeds, ["A"])
    ok, text = beats_random_init(res, "A", "knn")
    assert ok is False and "needs > 6.00" in text
    res = results([rec("A", v, 70.0, seed=i) for i, v in enumerate((73.0, 74.0, 75.0))], ["A"])  # gain 4, spread 1
    assert beats_random_init(res, "A", "knn")[0] is True
    assert NOISE_FLOOR == 1.0


def test_margin_within_twice_the_spread_needs_three_seeds():
    one = results([rec("A", 81.0, 60.0), rec("B", 80.0, 60.0)], ["A", "B"])  # margin 1 ≤ 2 × floor 1
    ok, why = R.greater("A", "B", "knn")(one)
    assert ok == UNDECIDABLE and "margin +1" in why and "≥ 3 seeds" in why
    three = results([rec("A", 81.0 + d, 60.0, seed=i) for i, d in enumerate((-0.2, 0, 0.2))]
                    + [rec("B", 80.0 + d, 60.0, seed=i) for i, d in enumerate((-0.2, 0, 0.2))], ["A", "B"])
    ok, why = R.greater("A", "B", "knn")(three)
    assert ok is True and "margin +1" in why and "3 seed(s)" in why
    wide = results([rec("A", 90.0, 60.0), rec("B", 80.0, 60.0)], ["A", "B"])  # margin 10: decided with one seed
    assert R.greater("A", "B", "knn")(wide)[0] is True and R.greater("B", "A", "knn")(wide)[0] is False


def test_close_and_ordering_rules_report_margins_and_can_fail():
    res = results([rec("A", 80.0, 60.0), rec("B", 79.5, 60.0), rec("C", 70.0, 60.0)], ["A", "B", "C"])
    assert R.close("A", "C", "knn", 2.0)(res)[0] is False  # |10| > 2, far from the boundary
    assert R.close("A", "B", "knn", 2.0)(res)[0] == UNDECIDABLE  # margin 1.5 within 2 × 1
    assert R.close("A", "B", "knn", 5.0)(res)[0] is True
    assert R.ordered(["A", "C"], "knn")(res)[0] is True and R.ordered(["C", "A"], "knn")(res)[0] is False
    assert R.ordered(["A", "B", "C"], "knn")(res)[0] == UNDECIDABLE  # A − B = 0.5


def test_rank_rules_are_undecidable_when_a_swap_within_the_spread_flips_them():
    arms = [Arm("a", x=1.0), Arm("b", x=2.0), Arm("c", x=3.0)]
    recs = [rec("a", 70.0, 60.0), rec("b", 80.0, 60.0), rec("c", 80.5, 60.0)]
    res = Results(Experiment("t", "P", "i", "e", arms, [], [Column("knn", "knn")]), recs)
    assert R.trend(["a", "b", "c"], "knn", +1, 0.9)(res)[0] == UNDECIDABLE  # b and c could swap: ρ 1 → 0.5
    assert R.trend(["a", "b", "c"], "knn", +1, 0.4)(res)[0] is True  # ρ ≥ 0.5 either way
    assert R.argmax_among(["a", "b", "c"], "knn", ["c"])(res)[0] == UNDECIDABLE
    assert R.argmax_among(["a", "b", "c"], "knn", ["b", "c"])(res)[0] is True


def test_non_accuracy_measures_skip_the_random_init_gate():
    res = results([rec("A", 50.0, 75.0, cov=0.3), rec("B", 50.0, 75.0, cov=0.1)], ["A", "B"])
    assert R.greater("A", "B", "cov")(res)[0] is True and R.greater("B", "A", "cov")(res)[0] is False


def test_states_tables_and_counts(tmp_path):
    claims = [Claim("A trains", ["A"], R.trains("A")),
              Claim("A > B", ["A", "B"], R.greater("A", "B", "knn")),
              Claim("entropy rises (by construction)", ["A"], lambda res: (True, "property of the softmax"), kind="sanity")]
    res = results([rec("A", 74.0, 75.0), rec("B", 70.0, 75.0)], ["A", "B"], claims)
    exp = res.experiment
    out = evaluate_claims(exp, res)
    assert [c["verdict"] for c in out] == [REPRODUCED, UNDECIDABLE_WORD, SANITY_PASSED]
    assert out[1]["reproduced"] is None and out[2]["kind"] == "sanity"
    state, text = overall(out, res)
    assert state == UNDECIDABLE and text.startswith(UNDECIDABLE_WORD) and "1 undecidable" in text and "sanity checks 1/1" in text
    assert row_verdict(exp.arms[1], out, res) == UNDECIDABLE_WORD
    payload = write_all(exp, res, "smoke", 1, tmp_path, 1.0)
    assert payload["counts"] == {"claims": 2, REPRODUCED: 1, NOT_REPRODUCED: 0, UNDECIDABLE_WORD: 1, "not run": 0,
                                 "sanity checks": 1, "sanity passed": 1}
    assert payload["state"] == UNDECIDABLE_WORD
    assert UNDECIDABLE_WORD in (tmp_path / "results.md").read_text() and UNDECIDABLE_WORD in (tmp_path / "results.csv").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "Sanity checks" in html and "1 undecidable at this scale" in html
    # a sanity check that passes never turns a failed experiment into a reproduced one
    exp.claims = [claims[2], Claim("B > A", ["A", "B"], lambda r: (False, "no"))]
    assert overall(evaluate_claims(exp, res), res)[0] is False
    exp.claims = [claims[2]]
    assert overall(evaluate_claims(exp, res), res)[0] is None  # no claim, only a sanity check: nothing reproduced


def test_catalogue_counts_undecidable_apart(tmp_path):
    d = tmp_path / "zhang-t4-smoke"
    d.mkdir()
    counts = {"claims": 5, REPRODUCED: 3, NOT_REPRODUCED: 0, UNDECIDABLE_WORD: 2, "not run": 0, "sanity checks": 1, "sanity passed": 1}
    (d / "results.json").write_text(json.dumps({"id": "zhang-t4", "scale": "smoke", "verdict": "undecidable at this scale (3/5 ...)",
                                                "state": UNDECIDABLE_WORD, "counts": counts, "seeds": 3, "run_seconds": 300.0}))
    text = markdown_table(tmp_path)
    row = [line for line in text.splitlines() if line.startswith("| zhang-t4 ")][0]
    assert "| 3 / 0 / 2 |" in row and "| 1/1 |" in row and "| 3 |" in row and "5.0 min" in row
    totals = summary_counts({"zhang-t4": json.loads((d / "results.json").read_text())})
    assert totals["experiments"][UNDECIDABLE_WORD] == 1 and totals["claims"][UNDECIDABLE_WORD] == 2
    line = totals_line(tmp_path)
    assert "1 undecidable at this scale, 28 not run yet (of 29)" in line and "Claims: 3 reproduced, 0 not reproduced, 2 undecidable" in line


@pytest.mark.parametrize("label_a, label_b", [("o_e ✓ r_e ✗", "o_e ✗ r_e ✓"), ("τ = 0.1", "τ = 0.2"), ("a (1)", "a [1]")])
def test_labels_differing_only_in_symbols_get_distinct_folders(label_a, label_b):
    from siamlab.experiments.runner import slug

    assert slug(label_a) != slug(label_b)
    assert slug("SimSiam") == "SimSiam" and slug("Mirror SimSiam") == "Mirror_SimSiam"
    assert slug("x" * 100) != slug("x" * 99 + "y")  # cut labels keep a hash of the whole label
