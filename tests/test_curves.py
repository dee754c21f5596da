"""Scale curves (``reproduce --curve``): the trend rule on synthetic points, curve.json / plots / page from claims that
carry the verdicts' contract keys (value, interval, threshold, paper, quantity), and from claims that do not."""
from __future__ import annotations

import json

import pytest

from siamlab.experiments import gates, outputs
from siamlab.experiments.catalogue import curve_cells
from siamlab.experiments.curves import claim_points, parse_budgets, run_curve, trend
from siamlab.experiments.spec import Arm, Claim, Column, Experiment


def _p(budget, value, lo=None, hi=None):
    return {"budget": budget, "value": value, "interval": None if lo is None else (lo, hi)}


@pytest.mark.parametrize("first, last, ref, word", [
    (_p(1, 0.10, 0.08, 0.12), _p(8, 0.30, 0.27, 0.33), 1.0, "toward"),  # disjoint, closer to the paper's 1.0
    (_p(1, 0.10, 0.08, 0.12), _p(8, 0.30, 0.27, 0.33), 0.0, "away"),
    (_p(1, 0.10, 0.05, 0.15), _p(8, 0.13, 0.11, 0.16), 1.0, "none"),  # overlapping intervals: noise, not a trend
    (_p(1, 0.10), _p(8, 0.90, 0.85, 0.95), 1.0, "unknown"),  # one seed: no interval
    (_p(1, None), _p(8, 0.9, 0.8, 1.0), 1.0, "unknown"),
    (_p(1, 0.10, 0.08, 0.12), _p(8, 0.30, 0.27, 0.33), None, "unknown"),  # moved, but toward what?
    (_p(1, 0.10, 0.08, 0.12), _p(8, 2.00, 1.95, 2.05), 1.0, "away"),  # overshoots the paper's value by more than before
])
def test_trend_rule(first, last, ref, word):
    got, text = trend(first, last, ref)
    assert got == word, text
    if first["value"] is not None:
        assert f"{first['value']:.4g}" in text and f"×{last['budget']:g}" in text


@pytest.mark.parametrize("side, first, last, word", [
    ("below", -0.70, -0.87, "toward"),  # a collapse margin going further below 0: the collapse claim holds more clearly
    ("below", 0.81, 0.78, "toward"),
    ("below", -0.70, -0.40, "away"),
    ("above", 1.3, 3.6, "toward"),
    ("above", 3.6, 1.3, "away"),
])
def test_a_one_sided_threshold_counts_the_claims_direction(side, first, last, word):
    got, text = trend(_p(1, first, first - 0.01, first + 0.01), _p(2, last, last - 0.01, last + 0.01), 0.0,
                      "the rule's threshold", side)
    assert got == word and f"holds {side}" in text, text


def test_claim_points_take_the_paper_value_else_the_threshold_and_tolerate_missing_keys():
    def res(value, lo, hi, verdict):
        return {"claims": [{"text": "a", "kind": "claim", "value": value, "interval": [lo, hi], "threshold": 0.5, "paper": None,
                            "quantity": "share", "seeds": 3, "verdict": verdict},
                           {"text": "s", "kind": "sanity", "value": 1.0},
                           {"text": "old", "verdict": outputs.NOT_REPRODUCED}]}
    pts = claim_points([(1, res(0.1, 0.05, 0.15, outputs.NOT_REPRODUCED)), (4, res(0.6, 0.55, 0.65, outputs.REPRODUCED))])
    assert [c["text"] for c in pts] == ["a", "old"]  # counted claims only
    a, old = pts
    assert a["trend"] == "toward" and "the rule's threshold 0.5" in a["trend_text"] and a["verdict_at_largest"] == outputs.REPRODUCED
    assert a["quantity"] == "share" and [p["seeds"] for p in a["points"]] == [3, 3]
    assert old["trend"] == "unknown" and [p["value"] for p in old["points"]] == [None, None]


def test_a_compound_claim_is_followed_on_one_quantity_across_budgets():
    """At ×1 the kNN gain decides the claim, at ×2 the collapse margin does: the curve keeps following the gain."""
    def part(q, value, lo, hi, thr):
        return {"quantity": q, "value": value, "interval": [lo, hi], "threshold": thr, "side": "above", "paper": None,
                "upper": None, "seeds": 3}

    def res(margin, gain, decided_by):
        parts = [part("margin", *margin, 0.0), part("gain", *gain, 1.0)]
        lead = parts[decided_by]
        return {"claims": [{"text": "trains", "kind": "claim", **lead, "verdict": "x", "parts": parts}]}
    pts = claim_points([(1, res((0.9, 0.8, 1.0), (0.5, -0.5, 1.5), 1)), (2, res((-0.2, -0.3, -0.1), (4.0, 3.0, 5.0), 0))])
    (c,) = pts
    assert c["quantity"] == "gain" and [p["value"] for p in c["points"]] == [0.5, 4.0] and c["trend"] == "toward"
    # the claim entries written by outputs.claim_entry carry those parts
    from siamlab.experiments.stats import Verdict, all_of
    v = all_of([Verdict(True, "m", value=0.9, threshold=0.0, interval=(0.8, 1.0), quantity="margin", seeds=3, side="above"),
                Verdict(gates.UNDECIDABLE, "g", value=0.5, threshold=1.0, interval=(-0.5, 1.5), quantity="gain", seeds=3,
                        side="above")])
    entry = outputs.claim_entry(Claim("trains", ["a"], lambda r: v), v)
    assert [p["quantity"] for p in entry["parts"]] == ["margin", "gain"] and entry["quantity"] == "gain"


def test_parse_budgets():
    assert parse_budgets("8,1, 3") == [1.0, 3.0, 8.0]
    for bad in ("1", "0,2", "a,b", "", "2,2"):
        with pytest.raises(Exception, match="--curve"):
            parse_budgets(bad)


def steps_value(params: dict, seed: int) -> tuple:
    """A function arm whose value grows with its training length (steps) and varies a little with the seed."""
    v = params["optim"]["steps"] / 100 + 0.01 * seed
    return {"final": {"v": v}}, [{"kind": "diag", "step": params["optim"]["steps"], "epoch": 1.0, "v": v}]


def test_curve_folder_end_to_end(tmp_path, monkeypatch):
    """Claims reported with the contract keys (as the verdicts' rules will): the quantity rises with the budget toward
    the paper's 1.0; the page escapes the claim's text and inlines one plot per claim."""
    plain = outputs.evaluate_claims

    def evaluate(exp, results):
        vals = results.values("A", "v")
        n = len(vals)
        m = sum(vals) / n
        half = 0.02 if n > 1 else None
        extra = {"value": m, "interval": [m - half, m + half] if half else None, "threshold": 0.5, "paper": 1.0,
                 "quantity": "v of <A>", "more_seeds_could_decide": False}
        return [{**c, **extra} for c in plain(exp, results)]

    monkeypatch.setattr(outputs, "evaluate_claims", evaluate)
    exp = Experiment("toy-curve", "P", "item", "-", [Arm("A", run=steps_value)],
                     [Claim("<b>v</b> reaches 0.5", ["A"], lambda res: (res.mean("A", "v") > 0.5, "mean"))], [Column("v", "v")],
                     base={"optim": {"steps": 10}, "diag": {"every_steps": 1}}, seeds={"tiny": 1, "smoke": 2, "paper": 1},
                     data_kind="points")
    lines = []
    folder = run_curve(exp, "smoke", [1, 3, 8], tmp_path, curve_seeds=1, log=lines.append)
    assert folder.name == "toy-curve-smoke-curve" and (tmp_path / "toy-curve-smoke-b3" / "results.json").is_file()
    curve = json.loads((folder / "curve.json").read_text())
    c = curve["claims"][0]
    assert [p["budget"] for p in c["points"]] == [1, 3, 8] and [p["seeds"] for p in c["points"]] == [2, 2, 1]
    assert c["points"][-1]["interval"] is None  # one seed at the largest budget: no interval, so the trend is unknown
    assert c["trend"] == "unknown" and c["verdict_at_largest"] == outputs.REPRODUCED and curve["largest_budget"] == 8
    assert "1 seed(s) per arm, with no seeds added (--curve-seeds)" in curve["notes"]
    assert any("budget ×8 (1 seed(s), none added)" in line for line in lines)
    assert curve["figures"][0]["drawn"] and (folder / "figures" / "claim-1.png").read_bytes().startswith(b"\x89PNG")
    page = (folder / "curve.html").read_text()
    assert "&lt;b&gt;v&lt;/b&gt;" in page and "<b>v</b>" not in page and "data:image/png;base64," in page
    assert curve_cells(tmp_path, "toy-curve") == ["×8: reproduced", "1 unknown"]  # the catalogue's two curve columns
    assert curve_cells(tmp_path, "gen-f2") == ["—", "—"]  # no curve
    # two seeds everywhere: the intervals (±0.02) at ×1 (0.105) and ×8 (0.805) are disjoint, closer to 1.0: toward
    folder = run_curve(exp, "smoke", [1, 8], tmp_path / "two", log=lambda s: None)
    c = json.loads((folder / "curve.json").read_text())["claims"][0]
    assert c["trend"] == "toward" and "distance 0.895 → 0.195" in c["trend_text"], c["trend_text"]


def test_a_curve_without_the_contract_keys_draws_no_points_and_says_why(tmp_path):
    exp = Experiment("toy-old", "P", "item", "-", [Arm("A", run=steps_value)], [Claim("v", ["A"], lambda res: (gates.UNDECIDABLE, "?"))],
                     [Column("v", "v")], base={"optim": {"steps": 10}, "diag": {"every_steps": 1}}, data_kind="points")
    folder = run_curve(exp, "smoke", [1, 2], tmp_path, log=lambda s: None)
    curve = json.loads((folder / "curve.json").read_text())
    assert curve["claims"][0]["trend"] == "unknown" and not curve["figures"][0]["drawn"]
    assert "no value" in curve["figures"][0]["why"] and "Figure not drawn" in (folder / "curve.html").read_text()
