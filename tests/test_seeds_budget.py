"""Seeds added where they can decide a claim, and the budget knob (``reproduce --budget``): on experiments whose arms
are functions (no training), and on the configs of the catalogue's experiments."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from siamlab.errors import ConfigError
from siamlab.experiments import gates, get, outputs, run_experiment
from siamlab.experiments.catalogue import markdown_table, seeds_cell
from siamlab.experiments.cli import reproduce
from siamlab.experiments.runner import default_out, next_count, seed_cap, seeds_wanted
from siamlab.experiments.scales import arm_config, budgeted, with_budget
from siamlab.experiments.spec import Arm, Claim, Column, Experiment

UND = outputs.UNDECIDABLE


def seed_value(params: dict, seed: int) -> tuple:
    """A function arm: its value is the seed plus an offset (so every seed is a different number)."""
    v = params["points"]["offset"] + seed
    return {"final": {"v": float(v)}}, [{"kind": "diag", "step": params["optim"]["steps"], "epoch": 1.0, "v": float(v)}]


def _toy(rule, labels=("A", "B", "C")) -> Experiment:
    arms = [Arm(lab, {"points": {"offset": 10 * i}}, run=seed_value) for i, lab in enumerate(labels)]
    return Experiment("toy", "P", "item", "-", arms, [Claim("A vs B", ["A", "B"], rule), Claim("C", ["C"], lambda r: (True, "ok"))],
                      [Column("v", "v")], base={"optim": {"steps": 10}, "diag": {"every_steps": 1}, "engine": {"threads": 1}},
                      seeds={"tiny": 2, "smoke": 2, "paper": 2}, data_kind="points")


@pytest.fixture
def could_decide(monkeypatch):
    """Claims as the verdicts' rules will report them: an undecidable claim says more seeds could decide it."""
    plain = outputs.evaluate_claims

    def evaluate(exp, results):
        return [{**c, "more_seeds_could_decide": c["verdict"] == UND} for c in plain(exp, results)]

    monkeypatch.setattr(outputs, "evaluate_claims", evaluate)


def decided_at(n: int):
    def rule(res):
        k = len(res.values("A", "v"))
        return (True, f"{k} seeds") if k >= n else (gates.UNDECIDABLE, f"{k} seeds: more could decide")
    return rule


def test_seeds_grow_for_the_arms_of_an_undecidable_claim_until_it_is_decided(tmp_path, could_decide):
    lines = []
    out = run_experiment(_toy(decided_at(5)), "smoke", out=str(tmp_path / "x"), log=lines.append)
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == 2 and res["seeds_by_arm"] == {"A": 5, "B": 5, "C": 2}  # 2 → 3 → 5; C's claim was decided
    assert [r["seeds"] for r in res["seed_rounds"]] == [{"A": 3, "B": 3}, {"A": 5, "B": 5}]
    assert res["seed_rounds"][0]["claims"] == ["A vs B"]
    assert [c["verdict"] for c in res["claims"]] == [outputs.REPRODUCED] * 2 and [c["seeds"] for c in res["claims"]] == [5, 2]
    rows = {r["label"]: r for r in res["rows"]}
    assert rows["A"]["seeds"] == 5 and rows["C"]["seeds"] == 2 and res["headers"][-2] == "seeds"
    assert sorted(r["seed"] for r in res["runs"] if r["label"] == "A") == [0, 1, 2, 3, 4]
    assert any("A 2 → 3 seeds" in line for line in lines) and any("A 3 → 5 seeds" in line for line in lines)
    assert seeds_cell(res) == "2 → 2–5"
    assert "2, added up to 5 where more seeds could decide a claim" in (out / "report.html").read_text()


def test_seeds_stop_at_the_cap_and_never_grow_at_tiny_scale(tmp_path, could_decide):
    out = run_experiment(_toy(decided_at(99)), "smoke", out=str(tmp_path / "cap"), log=lambda s: None)
    res = json.loads((out / "results.json").read_text())
    assert res["seeds_by_arm"]["A"] == seed_cap(_toy(None), "smoke") == gates.SEED_CAP["smoke"] == res["seed_cap"]
    assert res["claims"][0]["verdict"] == UND
    out = run_experiment(_toy(decided_at(99)), "smoke", out=str(tmp_path / "few"), log=lambda s: None, max_seeds=3)
    assert json.loads((out / "results.json").read_text())["seeds_by_arm"]["A"] == 3
    out = run_experiment(_toy(decided_at(99)), "tiny", out=str(tmp_path / "tiny"), log=lambda s: None)
    assert json.loads((out / "results.json").read_text())["seeds_by_arm"] == {"A": 2, "B": 2, "C": 2}


def test_a_curve_caps_added_seeds_at_every_budget_but_one(tmp_path, could_decide):
    """--max-seeds in a curve: the ×1 point is the scale's ordinary run (up to the scale's cap, as a plain reproduce
    into the same folder gives it), ×2 stops at the cap given, the largest budget runs --curve-seeds."""
    from siamlab.experiments.curves import run_curve

    folder = run_curve(_toy(decided_at(99)), "smoke", [1, 2, 4], tmp_path, curve_seeds=2, max_seeds=3, log=lambda s: None)
    seeds = {name: json.loads((tmp_path / name / "results.json").read_text())["seeds_by_arm"]["A"]
             for name in ("toy-smoke", "toy-smoke-b2", "toy-smoke-b4")}
    assert seeds == {"toy-smoke": gates.SEED_CAP["smoke"], "toy-smoke-b2": 3, "toy-smoke-b4": 2}
    notes = json.loads((folder / "curve.json").read_text())["notes"]
    assert "up to 3 per arm at the budgets between ×1 and the largest (--max-seeds)" in notes


def test_seeds_wanted_reads_the_contract_keys_and_tolerates_their_absence():
    arms = [Arm("A", group="g"), Arm("B", group="g"), Arm("C")]
    undecided = {"kind": "claim", "verdict": UND, "more_seeds_could_decide": True, "text": "t"}
    assert seeds_wanted(arms, [{**undecided, "arms": ["group:g"]}], {"A": 3, "B": 2, "C": 3}, 8) == ({"A": 5, "B": 5}, ["t"])
    assert seeds_wanted(arms, [{**undecided, "arms": ["*"]}], {"A": 8, "B": 8, "C": 5}, 8)[0] == {"A": 8, "B": 8, "C": 8}
    assert seeds_wanted(arms, [{**undecided, "arms": ["*"]}], {"A": 8, "B": 8, "C": 8}, 8) == ({}, [])  # at the cap
    for c in ({**undecided, "more_seeds_could_decide": False}, {k: v for k, v in undecided.items() if k != "more_seeds_could_decide"},
              {**undecided, "kind": "sanity"}, {**undecided, "verdict": outputs.NOT_REPRODUCED}):
        assert seeds_wanted(arms, [{**c, "arms": ["A"]}], {"A": 3, "B": 3, "C": 3}, 8) == ({}, [])
    assert [next_count(n, 8) for n in (1, 2, 3, 5, 8)] == [2, 3, 5, 8, 8]


def test_budget_multiplies_training_length_and_the_intervals_not_the_rest():
    cfg = {"optim": {"epochs": 20, "warmup_epochs": 2, "lr": 0.5, "batch_size": 128}, "eval": {"every_epochs": 5},
           "diag": {"every_steps": 10}, "model": {"width": 8}}
    b = with_budget(cfg, 3)
    assert b["optim"] == {"epochs": 60, "warmup_epochs": 6, "lr": 0.5, "batch_size": 128}
    assert (b["eval"]["every_epochs"], b["diag"]["every_steps"], b["model"]) == (15, 30, {"width": 8}) and cfg["optim"]["epochs"] == 20
    assert with_budget(cfg, 1) is cfg and with_budget(cfg, 0.5)["optim"]["epochs"] == 10
    assert with_budget({"optim": {"steps": 7}, "diag": {"every_steps": 1}}, 2.5)["optim"]["steps"] == 18


def test_budget_scales_the_phases_the_rules_and_figures_read():
    """zhang-f5b's rule reads the phase starts from the arm: at budget 2 it must see the doubled ones."""
    exp = get("zhang-f5b")
    twice = budgeted(exp, 2)
    arm, arm2 = exp.arms_for("smoke")[0], twice.arms_for("smoke")[0]
    assert [p["epoch"] for p in arm2.overrides["phases"]] == [2 * p["epoch"] for p in arm.overrides["phases"]]
    d1, d2 = arm_config(exp, arm, "smoke", 0), arm_config(twice, arm2, "smoke", 0)
    assert d2["optim"]["epochs"] == 2 * d1["optim"]["epochs"] and d2["phases"][1]["epoch"] == 2 * d1["phases"][1]["epoch"]
    assert d2["diag"]["every_steps"] == 2 * d1["diag"]["every_steps"] and d2["optim"]["lr"] == d1["optim"]["lr"]
    assert twice.figures[0].params["vlines"] == [2 * v for v in exp.figures[0].params["vlines"]]
    assert budgeted(exp, 1) is exp and str(default_out("zhang-f5b", "smoke", 2)) == "runs/reproduce/zhang-f5b-smoke-b2"


def test_a_budget_run_has_its_own_folder_and_the_catalogue_reads_only_budget_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = run_experiment(_toy(decided_at(1)), "smoke", log=lambda s: None)
    longer = run_experiment(_toy(decided_at(1)), "smoke", log=lambda s: None, budget=3)
    assert longer.name == "toy-smoke-b3" and plain.name == "toy-smoke"
    res = json.loads((longer / "results.json").read_text())
    assert res["budget"] == 3 and json.loads((plain / "results.json").read_text())["budget"] == 1
    assert "budget ×3 (training steps)" in (longer / "report.html").read_text()
    assert "budget ×" not in (plain / "report.html").read_text()
    assert "Every run trained with one thread" in res["notes"]  # the toy's params set engine.threads: 1
    run = json.loads((longer / "runs" / "A-s0" / "summary.json").read_text())
    assert run["final"]["v"] == 0.0 and (longer / "runs" / "A-s0" / "config.yaml").read_text().count("steps: 30") == 1
    for d in (plain, longer):  # the catalogue table takes the budget-1 folder of an id, whatever the folders' order
        r = json.loads((d / "results.json").read_text())
        (tmp_path / "cat" / f"{d.name}").mkdir(parents=True)
        (tmp_path / "cat" / f"{d.name}" / "results.json").write_text(json.dumps({**r, "id": "zhang-t2", "verdict": f"v{r['budget']:g}"}))
    row = [line for line in markdown_table(tmp_path / "cat").splitlines() if line.startswith("| zhang-t2 ")][0]
    assert "| v1 |" in row and "v3" not in row


@pytest.mark.parametrize("opts, field", [({"budget": 0.0}, "--budget"), ({"jobs": 0}, "--jobs"), ({"curve": "1"}, "--curve"),
                                         ({"curve": "1,x"}, "--curve"), ({"curve_seeds": 2}, "--curve-seeds"),
                                         ({"curve": "1,2", "budget": 2.0}, "--budget and --curve"),
                                         ({"max_seeds": 0}, "--max-seeds")])
def test_bad_options_are_one_sentence_before_any_run(opts, field, tmp_path):
    args = SimpleNamespace(id="gen-f2", list=False, scale="tiny", seeds=None, out=str(tmp_path / "o"), **opts)
    with pytest.raises(ConfigError) as err:
        reproduce(args)
    assert field in str(err.value) and "\n" not in str(err.value) and not (tmp_path / "o").exists()
