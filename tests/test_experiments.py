"""The experiment catalogue: registry vs SPEC §4, verdict rules, every experiment at tiny scale, a toy one at smoke.

Tiny runs share one folder so identical runs are reused across experiments (as `siamlab reproduce`
does). Verdicts at tiny scale mean nothing; the tests check plumbing: files, the random-init row,
a filled verdict column. The smoke test (marked slow) checks that verdicts get decided.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from siamlab import config
from siamlab.errors import SiamlabError
from siamlab.experiments import all_experiments, get, ids, run_experiment
from siamlab.experiments import rules as R
from siamlab.experiments.catalogue import markdown_table
from siamlab.experiments.cli import reproduce
from siamlab.experiments.measures import RunRecord, collapsed, series, value
from siamlab.experiments.outputs import NOT_REPRODUCED, NOT_RUN, RANDOM_INIT, REPRODUCED, SANITY_FAILED, SANITY_NOT_RUN, SANITY_PASSED, UNDECIDABLE, judged_by
from siamlab.experiments.results import Results, mean_std
from siamlab.experiments.scales import arm_config, methods_needed
from siamlab.experiments.spec import Arm, Claim, Column, Experiment, SCALES

SPEC = Path("/work/shared/SPEC.md")
SPEC_IDS = [
    "zhang-t1", "zhang-t2", "zhang-f3", "zhang-f4", "zhang-t3", "zhang-t4", "zhang-f5a", "zhang-f5b", "zhang-f5c",
    "zhang-f6", "zhang-f7", "zhang-t5", "zhang-t6", "zhang-f9", "center-f3", "center-f4", "center-f5", "center-f6",
    "center-f7", "gen-t1", "gen-f3", "gen-f4", "gen-f5", "gen-f2", "bridge-f1", "bridge-f3", "bridge-t1", "bridge-t2",
    "bridge-t3", "bridge-t4",
]
VERDICTS = {REPRODUCED, NOT_REPRODUCED, UNDECIDABLE, NOT_RUN, "sanity check only"}
CLAIM_STATES = {REPRODUCED, NOT_REPRODUCED, UNDECIDABLE, NOT_RUN, SANITY_PASSED, SANITY_FAILED, SANITY_NOT_RUN}


def spec_table() -> dict:
    """id -> expected verdict, parsed from SPEC §4 when the file is there, else the hard-coded ids."""
    if not SPEC.exists():
        return {i: None for i in SPEC_IDS}
    rows = re.findall(r"^\| ((?:zhang|center|gen|bridge)-[a-z0-9]+) \| (.+?) \| (.+?) \|$", SPEC.read_text(), re.M)
    return {i: expected for i, _, expected in rows}


# --- registry ------------------------------------------------------------------------------------
def test_registry_covers_every_spec_id_with_its_expected_verdict():
    table = spec_table()
    assert len(table) == 30
    assert ids() == list(table)  # same ids, same order
    for exp in all_experiments():
        if table[exp.id] is not None:
            assert exp.expected == table[exp.id], exp.id


def test_every_arm_is_judged_by_a_claim_at_every_scale():
    for exp in all_experiments():
        assert exp.claims and exp.columns, exp.id
        for scale in SCALES:
            for arm in exp.arms_for(scale):
                assert any(judged_by(arm, c.arms) for c in exp.claims), (exp.id, scale, arm.label)


@pytest.mark.parametrize("scale", SCALES)
def test_every_arm_config_is_valid(scale):
    """Each run config parses (typed, range-checked) and its method params validate against the method."""
    from siamlab.methods import available
    from siamlab.methods.base import build_params

    methods = available()
    for exp in all_experiments():
        for arm in exp.arms_for(scale):
            if arm.run is not None:  # a function arm's params (GEN Fig. 2's points), not a training config
                continue
            d = arm_config(exp, arm, scale, seed=3)
            cfg = config.from_dict(d)
            assert cfg.engine.seed == 3
            for name in methods_needed(d):
                if name in methods and not cfg.phases:
                    build_params(methods[name].Params, cfg.method.params, name)


def test_paper_scale_uses_the_papers_settings():
    d = arm_config(get("zhang-t2"), get("zhang-t2").arms[0], "paper", 0)
    assert (d["model"]["backbone"], d["data"]["name"], d["optim"]["epochs"], d["optim"]["lr"]) == ("resnet18", "cifar100", 1000, 0.5)
    assert d["optim"]["weight_decay"] == 1e-5 and d["optim"]["warmup_epochs"] == 10
    b = arm_config(get("bridge-t4"), get("bridge-t4").arm("SimSiam"), "paper", 0)
    assert (b["model"]["backbone"], b["optim"]["name"], b["optim"]["batch_size"], b["model"]["proj_hidden"]) == ("resnet50", "lars", 2048, 2048)
    g = get("gen-t1")
    assert sorted(a.x for a in g.arms_for("paper") if a.group == "Barlow Twins") == [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def test_arm_with_another_method_drops_the_base_params():
    exp = Experiment("x", "P", "item", "exp", [Arm("b", {"method": {"name": "naive"}})], [], [],
                     base={"method": {"name": "simsiam", "params": {"predictor": "linear"}}})
    d = arm_config(exp, exp.arms[0], "tiny", 0)
    assert d["method"] == {"name": "naive"}


# --- CLI -----------------------------------------------------------------------------------------
def test_unknown_id_lists_valid_ids():
    with pytest.raises(SiamlabError) as err:
        reproduce(SimpleNamespace(id="zhang-t99", list=False, scale="tiny", seeds=None, out=None))
    assert "zhang-t2" in str(err.value) and "bridge-t4" in str(err.value)


def test_list_prints_every_id(capsys):
    assert reproduce(SimpleNamespace(id=None, list=True, scale="smoke", seeds=None, out=None)) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in SPEC_IDS) and "smoke time" in out


# --- measures and rules on constructed runs (independent of training) -----------------------------
def _rec(label, seed=0, std=1.0, knn=50.0, status="completed", diag=None, evals=None, verdict=None):
    diag = diag if diag is not None else [{"kind": "diag", "epoch": e, "std_scaled": std} for e in (1, 2, 3)]
    hist = diag + (evals or [])
    summ = {"status": status, "final": {"knn_backbone": knn}, "random_init": {"knn_backbone": 10.0}}
    if verdict is not None:
        summ["verdict"] = {"collapsed": verdict}
    return RunRecord(label, seed, status, summary=summ, history=hist)


def _results(records, arms):
    exp = Experiment("t", "P", "i", "e", arms, [], [Column("knn", "knn")], base={"model": {"proj_final_bn": False}})  # z can collapse
    return Results(exp, records)


def test_collapse_fallback_rule_and_run_verdict():
    assert collapsed(_rec("a", std=0.05)) is True
    assert collapsed(_rec("a", std=0.5)) is False
    assert collapsed(_rec("a", std=0.05, verdict=False)) is False  # the run's own verdict wins
    assert value(_rec("a", status="diverged"), "fails") == 1.0


def test_measure_suffixes():
    diag = [{"kind": "diag", "epoch": e, "m_r": v} for e, v in ((1, 0.9), (2, 0.2), (3, 0.4), (4, 0.6))]
    evals = [{"kind": "eval", "epoch": 0, "random_init": True, "knn_backbone": 10.0}, {"kind": "eval", "epoch": 4, "knn_backbone": 50.0}]
    r = _rec("a", diag=diag, evals=evals)
    assert value(r, "m_r_first") == 0.9 and value(r, "m_r_max") == 0.9
    assert value(r, "m_r_mean") == pytest.approx((0.9 + 0.2 + 0.4 + 0.6) / 4)
    assert value(r, "m_r") == pytest.approx((0.2 + 0.4 + 0.6) / 3)  # tail of three
    assert value(r, "knn") == 50.0 and value(r, "knn_init") == 10.0
    assert series(r, "knn") == [(0.0, 10.0), (4.0, 50.0)]


def test_mean_std_matches_numpy():
    v = [1.0, 4.0, 2.5, 7.0]
    m, s = mean_std(v)
    assert m == pytest.approx(np.mean(v)) and s == pytest.approx(np.std(v, ddof=1))


def test_correlations_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9).tolist(), rng.normal(size=9).tolist()
    y[3] = y[5]  # a tie
    assert R.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    from siamlab.analysis.stats import pearson

    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)


def test_rules_decide_and_can_fail():
    arms = [Arm("A", x=0.1), Arm("B", x=0.5), Arm("C", x=1.0)]
    recs = [_rec("A", s, knn=80 + 0.3 * s, std=0.9 - 0.1 * s) for s in range(3)]
    recs += [_rec("B", s, knn=60 - 0.3 * s, std=0.01 + 0.002 * s) for s in range(3)]
    recs += [_rec("C", s, knn=40 + 0.5 * s, std=0.5) for s in range(3)]
    res = _results(recs, arms)
    assert R.trains("A")(res)[0] is True
    assert R.collapses("B")(res)[0] is True and R.collapses("A")(res)[0] is False and R.trains("B")(res)[0] is False
    mixed = _results([_rec("A", 0, std=0.9), _rec("A", 1, std=0.02), _rec("A", 2, std=0.8)], arms)  # one seed collapsed
    assert R.trains("A")(mixed)[0] == "undecidable" and R.collapses("A")(mixed)[0] == "undecidable"
    assert R.greater("A", "B", "knn", 15.0)(res)[0] is True
    assert R.greater("A", "B", "knn", 25.0)(res)[0] is False
    assert R.trend(["A", "B", "C"], "knn", -1)(res)[0] is True
    assert R.trend(["A", "B", "C"], "knn", +1)(res)[0] is False
    assert R.ordered(["A", "B", "C"], "knn")(res)[0] is True and R.ordered(["C", "B", "A"], "knn")(res)[0] is False
    assert R.slightly_below("B", "A", "knn", 25.0)(res)[0] is True and R.slightly_below("B", "A", "knn", 10.0)(res)[0] is False
    assert R.argmax_among(["A", "B", "C"], "knn", ["A"])(res)[0] is True
    ok, why = R.greater("A", "Z", "knn")(res)
    assert ok is None and "'Z' not run" in why


def test_overall_aggregates_claims():
    from siamlab.experiments.gates import UNDECIDABLE as UND
    from siamlab.experiments.outputs import evaluate_claims, overall

    arms = [Arm("A"), Arm("B")]
    res = _results([_rec("A", s, std=0.9, knn=50 + s) for s in range(3)] + [_rec("B", s, std=0.01 + 0.01 * s) for s in range(3)], arms)
    exp = res.experiment
    judge = lambda: overall(evaluate_claims(exp, res), res)  # noqa: E731
    exp.claims = [Claim("A trains", ["A"], R.trains("A")), Claim("B collapses", ["B"], R.collapses("B"))]
    assert judge()[0] is True
    exp.claims.append(Claim("B trains", ["B"], R.trains("B")))
    ok, why = judge()
    assert ok is False and why.startswith("not reproduced (1/3 claims failed, 2 held")
    failed = [c for c in evaluate_claims(exp, res) if c["verdict"] == NOT_REPRODUCED]
    assert [c["text"] for c in failed] == ["B trains"]
    exp.claims = [Claim("A trains", ["A"], R.trains("A")), Claim("gated", ["B"], lambda r: (UND, "gate closed"))]
    assert judge()[0] == UND  # undecidable, not "not run"
    exp.claims = [Claim("C trains", ["C"], R.trains("C"))]
    assert judge()[0] is None


def test_changes_rule_reads_first_and_last():
    def up(s):
        return [{"kind": "diag", "epoch": e, "m_o": v + 0.01 * s * e, "std_scaled": 1.0} for e, v in ((1, 0.1), (2, 0.5), (3, 0.7))]

    res = _results([_rec("A", s, diag=up(s)) for s in range(3)], [Arm("A")])
    assert R.changes("A", "m_o", "up", 0.5)(res)[0] is True
    assert R.changes("A", "m_o", "up", 0.7)(res)[0] is False
    assert R.changes("A", "m_o", "down")(res)[0] is False


def test_missing_method_is_reported_as_not_run(tmp_path):
    exp = Experiment("fake-x", "P", "item", "it trains", [Arm("ghost", {"method": {"name": "no_such_method"}})],
                     [Claim("ghost trains", ["ghost"], R.trains("ghost"))], [Column("knn", "top-1")])
    out = run_experiment(exp, "tiny", 1, str(tmp_path / "x"), log=lambda s: None)
    res = json.loads((out / "results.json").read_text())
    assert res["reproduced"] is None and res["verdict"].startswith(NOT_RUN)
    assert "method no_such_method missing" in res["verdict"]
    assert [r["verdict"] for r in res["rows"] if not r["random_init"]] == [NOT_RUN]


def test_overrides_reach_every_run_and_bad_keys_fail_early(tmp_path):
    exp = get("zhang-f3")
    out = run_experiment(exp, "tiny", 1, str(tmp_path / "o"), log=lambda s: None, overrides=["optim.lr=0.0123"])
    for run in json.loads((out / "results.json").read_text())["runs"]:
        assert config.load(str(Path(run["run_dir"]) / "config.yaml")).optim.lr == 0.0123
    with pytest.raises(SiamlabError, match="optim.nope"):
        run_experiment(exp, "tiny", 1, str(tmp_path / "bad"), log=lambda s: None, overrides=["optim.nope=1"])
    assert not (tmp_path / "bad" / "runs").exists()


def test_catalogue_table(tmp_path):
    d = tmp_path / "zhang-t2-smoke"
    d.mkdir()
    (d / "results.json").write_text(json.dumps({"id": "zhang-t2", "scale": "smoke", "verdict": "reproduced (4/4 claims)", "run_seconds": 150.0}))
    text = markdown_table(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| zhang-t2 ")]
    assert rows and "reproduced (4/4 claims)" in rows[0] and "2.5 min" in rows[0]
    assert text.count("not run yet") == 29


# --- every experiment at tiny scale ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def check_outputs(out: Path, exp_id: str, scale: str) -> dict:
    for name in ("results.json", "results.csv", "results.md", "report.html"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["id"] == exp_id and res["scale"] == scale
    rows = res["rows"]
    assert rows[0]["label"].startswith(RANDOM_INIT) and rows[0]["random_init"]
    arm_rows = [r for r in rows if not r["random_init"]]
    assert arm_rows and all(r["verdict"] in VERDICTS for r in arm_rows)
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert table[0]["arm"].startswith(RANDOM_INIT) and all(r["verdict"] for r in table)
    md = (out / "results.md").read_text()
    assert "| random init" in md and "(paper)" in md and "(observed)" in md
    assert all(c["verdict"] in CLAIM_STATES for c in res["claims"])
    return res


@pytest.mark.parametrize("exp_id", SPEC_IDS)
def test_experiment_runs_at_tiny_scale(exp_id, tiny_root):
    out = run_experiment(get(exp_id), "tiny", 1, str(tiny_root / f"{exp_id}-tiny"), log=lambda s: None)
    res = check_outputs(out, exp_id, "tiny")
    ran = [r for r in res["runs"] if r["status"] in ("completed", "diverged")]
    errors = [r for r in res["runs"] if r["status"] == "error"]
    assert not errors, errors
    assert ran or all(r["message"].startswith("method ") for r in res["runs"])
    if ran:
        assert any(f["drawn"] for f in res["figures"]), res["figures"]


# --- smoke scale: verdicts get decided ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("exp_id", ["center-f4"])  # image experiments at smoke: tests/test_smoke_zhang.py
def test_smoke_scale_decides_verdicts(exp_id, tmp_path):
    out = run_experiment(get(exp_id), "smoke", 2, str(tmp_path / exp_id), log=lambda s: None, max_seeds=2)  # two seeds: intervals exist
    res = check_outputs(out, exp_id, "smoke")
    assert all(c["verdict"] != NOT_RUN for c in res["claims"]), res["claims"]
    assert all(r["verdict"] in (REPRODUCED, NOT_REPRODUCED, UNDECIDABLE) for r in res["rows"] if not r["random_init"])
    assert math.isfinite(res["rows"][0]["observed"]["knn"]["mean"])
