"""`siamlab atlas`: knobs from the command line, a grid of runs at tiny size through reproduce's machinery (a rerun
reuses every cell, --jobs 2 gives every number --jobs 1 gives), atlas.json, the heatmaps and the page, and one
sentence for every bad input."""
from __future__ import annotations

import importlib.util

import json
import shutil
from pathlib import Path

import pytest

from siamlab.cli import main
from siamlab.errors import ConfigError
from siamlab.experiments.atlas import Atlas, Knob, cells, parse_knob, run_atlas
from siamlab.experiments.atlases import ATLASES
from siamlab.report.atlas import VERDICT_COLOURS, write_atlas

from test_jobs import _strip  # timings and places left out

ROOT = Path(__file__).resolve().parents[1]

GRID = ["atlas", "simsiam", "--x", "optim.weight_decay=0,5e-3", "--y", "method.predictor=mlp,identity", "--scale", "tiny"]


def test_knobs_parse_values_as_the_command_line_writes_them():
    k = parse_knob("optim.weight_decay=0, 1e-4,5e-4", "--x")
    assert k.values == [0, 1e-4, 5e-4] and k.texts == ["0", "1e-4", "5e-4"] and k.name == "weight_decay"
    assert parse_knob("method.predictor=mlp,identity", "--y").values == ["mlp", "identity"]
    assert parse_knob("model.proj_final_bn=true,false", "--x").values == [True, False]
    assert Knob("method.momentum", [0.9]).overrides(0.9) == {"method": {"params": {"momentum": 0.9}}}
    assert Knob("optim.lr", [0.1]).overrides(0.1) == {"optim": {"lr": 0.1}}
    for bad, words in (("optim.lr", "KEY=V1,V2"), ("optim.lr=", "KEY=V1,V2"), ("optim.lr=0.1,,0.2", "empty value"),
                       ("optim.lr=0.1,0.1", "twice")):
        with pytest.raises(ConfigError, match=words):
            parse_knob(bad, "--x")


def test_cells_cover_the_grid_x_fastest_with_distinct_labels():
    a = Atlas("t", "byol", Knob("method.momentum", [0.0, 0.99]), Knob("optim.momentum", [0.8, 0.9]))
    got = [(i, j, arm.label) for i, j, arm in cells(a)]
    assert got == [(0, 0, "method.momentum=0.0, optim.momentum=0.8"), (1, 0, "method.momentum=0.99, optim.momentum=0.8"),
                   (0, 1, "method.momentum=0.0, optim.momentum=0.9"), (1, 1, "method.momentum=0.99, optim.momentum=0.9")]
    assert cells(a)[3][2].overrides == {"method": {"params": {"momentum": 0.99}}, "optim": {"momentum": 0.9}}


def test_tiny_atlas_runs_reuses_every_cell_and_writes_its_page(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(GRID + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(" running ") == 4 and "report:" in printed
    res = json.loads((out / "atlas.json").read_text())
    assert [(c["i"], c["j"]) for c in res["cells"]] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    for c in res["cells"]:
        run = c["runs"][0]
        assert run["status"] == "completed" and c["verdict"] in VERDICT_COLOURS and c["seeds"] == 1
        assert c["mean"]["knn_gain"] == pytest.approx(run["knn"] - run["knn_init"])
        assert run["cpu_seconds"] > 0 and run["rankme_projector"] >= 1
    cfg = (out / "runs").glob("weight_decay=5e-3_predictor=identity-*-s0/config.yaml")
    text = next(cfg).read_text()
    assert "predictor: identity" in text and "weight_decay: 0.005" in text
    for f in res["figures"]:
        assert f["drawn"] and (out / f["file"]).read_bytes().startswith(b"\x89PNG")
    page = (out / "atlas.html").read_text()
    assert 'name="viewport"' in page and 'class="table-scroll"' in page and page.count("data:image/png;base64") == len(res["figures"])
    # the same command again: every cell is reused, nothing trains
    assert main(GRID + ["--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert again.count(": reused | completed") == 4 and " running " not in again
    # one cell lost (a run folder removed): only that one is made again
    shutil.rmtree(next((out / "runs").glob("weight_decay=0_predictor=mlp-*-s0")))
    assert main(GRID + ["--out", str(out)]) == 0
    third = capsys.readouterr().out
    assert third.count(" running ") == 1 and third.count(": reused | completed") == 3
    assert _strip(json.loads((out / "atlas.json").read_text())["cells"]) == _strip(res["cells"])
    # the README's atlas section is generated from atlas.json: one row per y value, one cell per x value
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    section = tables.atlas_section(out, docs=tmp_path / "docs")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == f"| {res['y']['key']} \\ {res['x']['key']} | " + " | ".join(res["x"]["texts"]) + " |"
    for c in res["cells"]:
        cell = rows[1 + c["j"]].strip("| ").split(" | ")[1 + c["i"]]
        assert cell == f"{tables.SHORT[c['verdict']]} {c['mean']['knn_gain']:+.1f}", (cell, c)
    assert (tmp_path / "docs" / f"{res['name']}.png").read_bytes().startswith(b"\x89PNG")


def test_two_jobs_give_every_number_of_one_job(tmp_path):
    grid = Atlas("jobs", "simsiam", parse_knob("optim.weight_decay=0,5e-3", "--x"))
    logs = []
    one = run_atlas(grid, "tiny", out=str(tmp_path / "p" / "x"), log=lambda s: None, jobs=1)
    two = run_atlas(grid, "tiny", out=str(tmp_path / "q" / "x"), log=logs.append, jobs=2)
    a, b = (json.loads((d / "atlas.json").read_text()) for d in (one, two))
    assert _strip(a["cells"]) == _strip(b["cells"]) and len(a["cells"]) == 2
    assert sum(" running " in line for line in logs) == 2 and any(" epoch 1/1" in line for line in logs)


def test_bad_input_is_one_sentence(capsys, tmp_path):
    cases = [(["no-such-thing", "--x", "optim.lr=0.1"], "neither a named atlas"),
             (["simsiam"], "needs the knob to vary"),
             (["simsiam", "--x", "optim.lr"], "not of the form KEY=V1,V2"),
             (["simsiam", "--x", "optim.no_such=1,2"], "--x optim.no_such: unknown config key"),
             (["byol", "--x", "method.momentum=0.5,2"], "atlas cell 'momentum=2'"),
             (["simsiam", "--x", "optim.lr=0.1,0.2", "--y", "optim.lr=0.3,0.4"], "both vary optim.lr"),
             (["simsiam", "--x", "optim.lr=0.1,0.2", "--seeds", "0"], "--seeds=0 is not valid")]
    for argv, words in cases:
        assert main(["atlas", *argv, "--scale", "tiny", "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad" / "runs").exists()  # nothing ran


def fake_atlas(nx: int = 3, ny: int = 2) -> dict:
    """An atlas.json payload of nx × ny cells with every verdict, hostile text in its labels and reason."""
    verdicts = list(VERDICT_COLOURS)
    return {"name": "x", "title": "<script>alert(1)</script>", "method": "simsiam", "scale": "smoke", "seeds": 2,
            "x": {"key": "optim.lr", "values": list(range(nx)), "texts": [f"0.{i}" for i in range(nx)]},
            "y": {"key": "optim.weight_decay", "values": list(range(ny)), "texts": [str(j) for j in range(ny)]},
            "label_free_shown": ["rankme_projector"], "reason": "r & <b>", "reading": "", "notes": "", "cpu_seconds": 120.0,
            "base": {}, "scale_overrides": {},
            "cells": [{"i": i, "j": j, "label": f"<c{i}{j}>", "verdict": verdicts[(nx * j + i) % 6],
                       "verdicts": {verdicts[(nx * j + i) % 6]: 1, "diverged": 1}, "seeds": 2,
                       "runs": [{"seed": 0, "status": "completed", "verdict": "x", "run_dir": "runs/" + "long-name-" * 12}],
                       "mean": {"knn_gain": i - 1.0, "erank": 3.0 * j, "rankme_projector": None if i == 0 else 1.5 * i}}
                      for j in range(ny) for i in range(nx)]}


def test_maps_show_every_verdict_with_a_legend_and_escape_text(tmp_path):
    page = write_atlas(fake_atlas(), tmp_path).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;c00&gt;" in page and "r &amp; &lt;b&gt;" in page
    assert "÷ 2 cores: 1.0 min" in page
    saved = json.loads((tmp_path / "atlas.json").read_text())
    assert all(f["drawn"] for f in saved["figures"]) and len(saved["figures"]) == 5  # overview + verdict, gain, rank, RankMe


@pytest.mark.parametrize("name", sorted(ATLASES))
def test_named_atlases_are_valid_grids_with_their_reasons(name):
    from siamlab.experiments.atlas import check

    a = ATLASES[name]
    assert a.name == name and a.reason and a.title and len(cells(a)) >= 4
    check(a, "smoke", None)
    check(a, "tiny", None)


def test_a_signal_stops_the_atlas_with_the_shell_code_and_one_sentence(tmp_path, monkeypatch, capsys):
    """The runs machinery (runner.make_runs, tested with reproduce in test_jobs / test_runner) raises on SIGTERM after
    keeping every finished run; the atlas writes nothing and exits 128 + the signal, saying how to continue."""
    import signal

    from siamlab.experiments import atlas as atlas_mod
    from siamlab.experiments.runner import ExperimentInterrupted

    def stopped(*a, **k):
        raise ExperimentInterrupted("x stopped by SIGTERM after 1/4 runs; run the same command again to continue.", signal.SIGTERM)

    monkeypatch.setattr(atlas_mod, "make_runs", stopped)
    assert main(GRID + ["--out", str(tmp_path / "a")]) == 128 + signal.SIGTERM
    assert "run the same command again" in capsys.readouterr().err and not (tmp_path / "a" / "atlas.json").exists()
