"""Claims decided by statistics over seeds (SPEC §4, ISSUE 19.1) and sanity checks, on constructed runs.

A comparison holds when the 95 % interval of its per-seed quantity clears the claimed threshold, fails when it
clears the opposite side, and is undecidable otherwise; accuracy comparisons only between arms that beat their
random-init network by the same test; a sanity check is listed but never counted as a reproduction.
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


CAN_COLLAPSE = {"model": {"proj_final_bn": False}}  # arms whose z can collapse (no final BN holds its spread)


def rec(label, knn, init, seed=0, std=0.9, cov=None):
    diag = [{"kind": "diag", "epoch": e, "std_scaled": std, "m_r": 0.9, **({"cov_term": cov} if cov is not None else {})}
            for e in (1, 2, 3)]
    summ = {"status": "completed", "final": {"knn_backbone": knn}, "random_init": {"knn_backbone": init}}
    return RunRecord(label, seed, "completed", summary=summ, history=diag)


def results(records, labels, claims=()):
    exp = Experiment("t", "P", "i", "e", [Arm(lab) for lab in labels], list(claims), [Column("knn", "knn")], base=CAN_COLLAPSE)
    return Results(exp, records)


def seeds(label, knns, inits, **kw):
    return [rec(label, k, i, seed=s, **kw) for s, (k, i) in enumerate(zip(knns, inits))]


def paired_arms(diffs, base=80.0, init=60.0, wobble=(0.0, 1.5, -1.2, 0.7, -0.4, 0.9, -1.1, 0.3)):
    """Arms A and B whose per-seed difference A − B is ``diffs``; both far above their random init."""
    b = [base + wobble[s] for s in range(len(diffs))]
    return results(seeds("A", [x + d for x, d in zip(b, diffs)], [init] * len(diffs))
                   + seeds("B", b, [init] * len(diffs)), ["A", "B"])


def test_center_f6s_coin_flip_is_undecidable_and_a_clear_margin_is_decided():
    """ISSUE 19.1: learnable − fixed prototypes −0.65, +0.6, +1.2, +1.0, −1.6 over 5 seeds is no reproduction."""
    res = paired_arms([-0.65, 0.6, 1.2, 1.0, -1.6])
    v = R.greater("A", "B", "knn")(res)
    assert v.state == UNDECIDABLE and v.value == pytest.approx(0.11) and v.seeds == 5
    assert v.interval[0] < 0 < v.interval[1] and not v.more_seeds_could_decide and "would not decide" in v.why
    assert R.greater("B", "A", "knn")(res).state == UNDECIDABLE
    clear = paired_arms([2.1, 1.8, 2.4])
    assert R.greater("A", "B", "knn")(clear).state is True and R.greater("B", "A", "knn")(clear).state is False


def test_a_margin_is_not_decided_by_the_sign_of_a_small_mean():
    """zhang-f3's "a little below" passed at −0.3 and failed at +0.3 over three seeds with a spread of about 1."""
    for shift in (-0.3, 0.3):
        res = paired_arms([shift + d for d in (-1.0, 0.2, 0.8)])
        assert R.slightly_below("A", "B", "knn", 10.0)(res).state == UNDECIDABLE
    assert R.slightly_below("A", "B", "knn", 10.0)(paired_arms([-3.1, -2.6, -3.4])).state is True
    assert R.slightly_below("A", "B", "knn", 10.0)(paired_arms([2.9, 3.2, 2.7])).state is False  # above, not below
    assert R.slightly_below("A", "B", "knn", 2.0)(paired_arms([-5.1, -4.8, -5.3])).state is False  # far below


def test_best_within_a_point_does_not_pass_on_equal_arms_with_a_wide_interval():
    """zhang-t4: "keeping both is best, within 1 point" is non-inferiority: every paired interval above −1."""
    wide = paired_arms([-1.5, 1.4, 0.3, -0.2])  # equal on average, interval about ±2
    assert R.at_least_best_of("A", ["B"], "knn", 1.0)(wide).state == UNDECIDABLE
    tight = paired_arms([0.1, -0.1, 0.05, 0.0])
    assert R.at_least_best_of("A", ["B"], "knn", 1.0)(tight).state is True
    worse = paired_arms([-3.0, -2.8, -3.3])
    assert R.at_least_best_of("A", ["B"], "knn", 1.0)(worse).state is False


def test_within_tol_holds_only_when_the_whole_interval_is_inside():
    assert R.close("A", "B", "knn", 2.0)(paired_arms([0.3, -0.2, 0.1])).state is True
    assert R.close("A", "B", "knn", 2.0)(paired_arms([4.1, 3.8, 4.4])).state is False
    straddle = R.close("A", "B", "knn", 2.0)(paired_arms([1.0, 2.9, 1.6]))
    assert straddle.state == UNDECIDABLE and straddle.side == "inside" and straddle.threshold == -2.0 and straddle.upper == 2.0


def test_one_seed_decides_nothing_and_says_more_seeds_could():
    v = R.greater("A", "B", "knn")(paired_arms([10.0]))
    assert v.state == UNDECIDABLE and v.interval is None and v.more_seeds_could_decide and "one seed" in v.why


def test_accuracy_is_compared_only_between_arms_that_beat_random_init():
    below = results(seeds("A", [74.0, 74.5, 73.6], [75.0, 75.2, 74.9]) + seeds("B", [70.0, 70.4, 69.8], [75.0] * 3), ["A", "B"])
    v = R.greater("A", "B", "knn")(below)
    assert v.state == UNDECIDABLE and "random init" in v.why and "'A'" in v.why and "'B'" in v.why
    assert not v.more_seeds_could_decide  # both gains clearly below the floor: more seeds cannot open the gate
    assert v.value == pytest.approx(3.967, abs=0.01)  # the comparison's own numbers stay (scale curves plot them)
    above = results(seeds("A", [74.0, 74.5, 73.6], [60.0] * 3) + seeds("B", [70.0, 70.4, 69.8], [60.0] * 3), ["A", "B"])
    assert R.greater("A", "B", "knn")(above).state is True and R.greater("B", "A", "knn")(above).state is False


def test_the_gain_over_random_init_is_tested_against_the_noise_floor():
    small = results(seeds("A", [71.6, 71.8, 71.7], [70.0, 70.1, 70.2]), ["A"])  # gain 1.6 ± 0.25: above 1 point
    assert beats_random_init(small, "A", "knn").state is True
    near = results(seeds("A", [71.2, 71.5, 71.3], [70.0, 70.1, 70.2]), ["A"])  # gain 1.23, interval [0.85, 1.61]
    assert beats_random_init(near, "A", "knn").state == UNDECIDABLE
    tiny = results(seeds("A", [70.6, 70.5, 70.7], [70.0, 70.0, 70.0]), ["A"])  # gain 0.6: clearly below the floor
    assert beats_random_init(tiny, "A", "knn").state is False
    noisy = results(seeds("A", [68.0, 74.0, 80.0], [70.0] * 3), ["A"])  # gain 4 ± 15
    v = beats_random_init(noisy, "A", "knn")
    assert v.state == UNDECIDABLE and v.more_seeds_could_decide is False  # even 8 seeds: ±5 around 4 straddles 1
    assert NOISE_FLOOR == 1.0


def test_trend_is_decided_by_one_rank_correlation_per_seed():
    arms = [Arm("a", x=1.0), Arm("b", x=2.0), Arm("c", x=3.0)]
    exp = Experiment("t", "P", "i", "e", arms, [], [Column("knn", "knn")])
    rising = [rec(lab, v + s, 60.0, seed=s) for s in range(3) for lab, v in (("a", 70.0), ("b", 75.0), ("c", 80.0))]
    assert R.trend(["a", "b", "c"], "knn", +1, 0.6)(Results(exp, rising)).state is True
    assert R.trend(["a", "b", "c"], "knn", -1, 0.6)(Results(exp, rising)).state is False
    mixed = [rec(lab, v, 60.0, seed=s) for s, order in enumerate(((70, 75, 80), (80, 75, 70), (75, 80, 70)))
             for lab, v in zip("abc", order)]
    assert R.trend(["a", "b", "c"], "knn", +1, 0.6)(Results(exp, mixed)).state == UNDECIDABLE
    best = R.argmax_among(["a", "b", "c"], "knn", ["c"])(Results(exp, rising))
    assert best.state is True and "best other: 'b'" in best.why


def test_non_accuracy_measures_skip_the_random_init_gate():
    res = results(seeds("A", [50.0] * 3, [75.0] * 3, cov=0.3) + seeds("B", [50.0] * 3, [75.0] * 3, cov=0.1), ["A", "B"])
    assert R.greater("A", "B", "cov")(res)[0] is True  # below random init on kNN, but cov is no accuracy
    res = results([rec("A", 50.0, 75.0, seed=s, cov=0.3 + 0.01 * s) for s in range(3)]
                  + [rec("B", 50.0, 75.0, seed=s, cov=0.1 + 0.02 * s) for s in range(3)], ["A", "B"])
    assert R.greater("A", "B", "cov")(res)[0] is True and R.greater("B", "A", "cov")(res)[0] is False


def test_states_tables_and_counts(tmp_path):
    claims = [Claim("A trains", ["A"], R.trains("A")),
              Claim("A > B", ["A", "B"], R.greater("A", "B", "knn")),
              Claim("entropy rises (by construction)", ["A"], lambda res: (True, "property of the softmax"), kind="sanity")]
    res = results(seeds("A", [80.0, 81.0, 80.5], [70.0] * 3) + seeds("B", [70.0, 70.4, 69.8], [75.0] * 3), ["A", "B"], claims)
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
    md = (tmp_path / "results.md").read_text()
    assert UNDECIDABLE_WORD in md and UNDECIDABLE_WORD in (tmp_path / "results.csv").read_text()
    assert "| 95 % interval | threshold | distance |" in md and "collapse margin" in md and "effective rank" in md
    assert payload["claims"][0]["seeds"] == 3 and payload["claims"][0]["interval"] is not None
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
    assert "1 undecidable at this scale, 29 not run yet (of 30)" in line and "Claims: 3 reproduced, 0 not reproduced, 2 undecidable" in line


@pytest.mark.parametrize("label_a, label_b", [("o_e ✓ r_e ✗", "o_e ✗ r_e ✓"), ("τ = 0.1", "τ = 0.2"), ("a (1)", "a [1]")])
def test_labels_differing_only_in_symbols_get_distinct_folders(label_a, label_b):
    from siamlab.experiments.runner import slug

    assert slug(label_a) != slug(label_b)
    assert slug("SimSiam") == "SimSiam" and slug("Mirror SimSiam") == "Mirror_SimSiam"
    assert slug("x" * 100) != slug("x" * 99 + "y")  # cut labels keep a hash of the whole label
