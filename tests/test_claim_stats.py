"""Statistics over seeds (siamlab.experiments.stats, ISSUE 19.1) and the claim entry of results.json (the contract
the runner's scale curves and adaptive seeds read)."""
from __future__ import annotations

import math
import statistics

import pytest

from siamlab.experiments.outputs import claim_entry, evaluate_claims
from siamlab.experiments.spec import Arm, Claim, Column, Experiment
from siamlab.experiments.stats import UNDECIDABLE, Verdict, all_of, t_interval, seed_test

CONTRACT = {"value", "threshold", "interval", "paper", "quantity", "seeds", "more_seeds_could_decide"}


def test_interval_is_the_student_t_interval_of_the_mean():
    vals = [-0.65, 0.6, 1.2, 1.0, -1.6]
    iv = t_interval(vals)
    m, s = statistics.fmean(vals), statistics.stdev(vals)
    half = 2.7764451051977934 * s / math.sqrt(5)  # t(0.975, 4) from tables
    assert iv.mean == pytest.approx(m) and iv.lo == pytest.approx(m - half) and iv.hi == pytest.approx(m + half)
    one = t_interval([3.0])
    assert one.n == 1 and one.lo is None and one.hi is None


def test_claim_entry_carries_the_contract_keys_for_verdicts_and_for_plain_tuples():
    claim = Claim("a beats b", ["a", "b"], lambda res: None)
    v = seed_test([1.0, 1.2, 0.9, 1.1], "above", 0.5, quantity="knn a − b", cap=8, paper=2.0)
    e = claim_entry(claim, v)
    assert CONTRACT <= set(e) and e["verdict"] == "reproduced" and e["reproduced"] is True
    assert e["value"] == pytest.approx(1.05) and e["threshold"] == 0.5 and e["paper"] == 2.0 and e["seeds"] == 4
    assert e["interval"][0] > 0.5 and e["distance"] == pytest.approx(0.55) and e["more_seeds_could_decide"] is False
    exp = Experiment("t", "P", "i", "e", [Arm("a")], [Claim("old style", ["a"], lambda res: (True, "held"))], [Column("knn", "k")])
    old = evaluate_claims(exp, None)[0]
    assert CONTRACT <= set(old) and old["value"] is None and old["interval"] is None and old["seeds"] == 0


def test_an_undecidable_verdict_says_whether_more_seeds_could_decide():
    few = seed_test([0.9, 1.4, 0.2], "above", 0.0, quantity="q", cap=8)  # mean 0.83, s 0.6: ±1.5 now, ±0.5 at 8 seeds
    assert few.state == UNDECIDABLE and few.more_seeds_could_decide and "more seeds (up to 8)" in few.why
    tie = seed_test([0.5, -0.5, 0.4, -0.4], "above", 0.0, quantity="q", cap=8)  # mean 0: no number of seeds separates it
    assert tie.state == UNDECIDABLE and not tie.more_seeds_could_decide and "would not decide" in tie.why
    capped = seed_test([0.9, 1.4, 0.2], "above", 0.0, quantity="q", cap=3)
    assert capped.state == UNDECIDABLE and not capped.more_seeds_could_decide and "seed cap" in capped.why
    one = seed_test([5.0], "above", 0.0, quantity="q", cap=8)
    assert one.state == UNDECIDABLE and one.more_seeds_could_decide and one.interval is None


def test_all_of_fails_on_one_failure_and_is_undecidable_on_one_open_part():
    held = seed_test([1.0, 1.1, 0.9], "above", 0.0, quantity="h", cap=8)
    failed = seed_test([-1.0, -1.1, -0.9], "above", 0.0, quantity="f", cap=8)
    open_ = seed_test([0.9, 1.4, 0.2], "above", 0.0, quantity="o", cap=8)
    assert all_of([held, failed, open_]).state is False and all_of([held, failed]).quantity == "f"
    both = all_of([held, open_])
    assert both.state == UNDECIDABLE and both.quantity == "o" and both.more_seeds_could_decide
    assert all_of([held, held]).state is True and all_of([held, Verdict(None, "not run")]).state is None
