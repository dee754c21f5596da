"""A checkpoint that does not fit the run is refused in one sentence naming the layer or config key, for
``--resume`` and for ``siamlab eval`` (issue 14 item 3); ``siamlab eval`` shows progress (item 6)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.cli import main
from siamlab.engine.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
       "eval.knn_k=10", "engine.progress=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished toy runs: ``a`` (projector output 8) and ``b`` (projector output 16)."""
    out = tmp_path_factory.mktemp("runs")
    a = train(config.load(None, TOY + [f"engine.out={out}", "engine.run_name=a"])).run_dir
    b = train(config.load(None, TOY + [f"engine.out={out}", "engine.run_name=b", "model.proj_out=16"])).run_dir
    return a, b


@pytest.fixture
def run_a(runs, tmp_path):
    """A fresh copy of run ``a`` whose checkpoint a test may replace."""
    dest = tmp_path / "a"
    shutil.copytree(runs[0], dest)
    return dest


def both_commands(run: Path, capsys) -> list:
    """``siamlab train --resume`` and ``siamlab eval`` on ``run``: each one sentence, exit 2, no traceback."""
    lines = []
    for argv in (["train", "--resume", str(run)], ["eval", str(run), "--no-progress"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        got = [x for x in err.strip().splitlines() if x.strip()]
        assert len(got) == 1 and got[0].startswith("siamlab: error: ") and "Traceback" not in err, err
        lines.append(got[0])
    return lines


def test_checkpoint_of_another_architecture_names_the_layer_and_the_key(runs, run_a, capsys):
    shutil.copy(runs[1] / "checkpoints" / "last.pt", run_a / "checkpoints" / "last.pt")
    for line in both_commands(run_a, capsys):
        assert "encoder.projector" in line and "(16," in line and "(8," in line, line
        assert "model.proj_out=16 where this run has model.proj_out=8" in line, line


@pytest.mark.parametrize("how, words", [
    ("drop", ["layer encoder.backbone", "missing from the checkpoint"]),
    ("foreign", ["the checkpoint has layer intruder.weight"]),
    ("bare", ["not a siamlab checkpoint", "'method'"]),
    ("garbage", ["not a readable siamlab checkpoint"]),
])
def test_foreign_or_missing_keys_are_named(run_a, capsys, how, words):
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    if how == "drop":
        state["method"].pop(next(k for k in state["method"] if k.startswith("encoder.backbone")))
    elif how == "foreign":
        state["method"]["intruder.weight"] = torch.zeros(2)
    elif how == "bare":
        state = state["method"]
    if how == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        torch.save(state, path)
    for line in both_commands(run_a, capsys):
        for w in words:
            assert w in line, (w, line)


def test_checkpoint_of_another_config_is_named(run_a, capsys):
    """Same layers, another config: the weights would load, but into another run than the one they come from."""
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["optim"]["lr"] = 0.123  # an optimizer setting may differ (an edited schedule) ...
    state["config"]["data"]["noise_std"] = 0.5  # ... the data may not
    torch.save(state, path)
    for line in both_commands(run_a, capsys):
        assert "was written with data.noise_std=0.5 where this run has data.noise_std=None" in line, line


def test_checkpoint_without_training_state_cannot_resume_but_evaluates(run_a, capsys):
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    torch.save({"method": state["method"], "config": state["config"]}, path)
    assert main(["train", "--resume", str(run_a)]) == 2
    err = capsys.readouterr().err
    assert "lacks 'optimizer', 'step'" in err and "siamlab eval" in err, err
    assert main(["eval", str(run_a), "--no-progress"]) == 0


def test_eval_shows_progress_while_it_embeds_and_fits_the_probe(runs):
    """`siamlab eval` used to print nothing until the table; now each network's embedding of each split and
    the linear probe show a bar on stderr (the table stays on stdout)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "siamlab", "eval", str(runs[0]), "--linear", "--linear-epochs", "3"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for label in ("random init: embedding the train split", "random init: embedding the test split",
                  "trained: embedding the train split", "random init: linear probe", "trained: linear probe"):
        assert label in r.stderr, (label, r.stderr)
    assert "random init" in r.stdout and "linear_top1" in r.stdout and "embedding" not in r.stdout


NEWER_DATA_FIELDS = ("stream", "workers", "on_corrupt", "max_image_pixels")


def _forget_newer_fields(run: Path, extra_config: dict = None) -> None:
    """Make ``run`` look written before ``data.stream/workers/on_corrupt/max_image_pixels`` existed: the keys
    are deleted from the checkpoint's stored config and from config.yaml (``extra_config`` then edits it)."""
    import yaml

    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    conf = yaml.safe_load((run / "config.yaml").read_text())
    for d in (state["config"]["data"], conf["data"]):
        for k in NEWER_DATA_FIELDS:
            d.pop(k)
    for section, values in (extra_config or {}).items():
        conf[section].update(values)
    torch.save(state, path)
    (run / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))


def test_checkpoint_written_before_newer_fields_existed_evaluates_and_resumes(run_a, capsys):
    """A field added to the config after a checkpoint was written reads as its default: the run's current
    value is that default, so the checkpoint fits (it used to be refused as ``'(not set)'``)."""
    _forget_newer_fields(run_a)
    assert main(["eval", str(run_a), "--no-progress"]) == 0, capsys.readouterr().err
    assert main(["train", "--resume", str(run_a)]) == 0, capsys.readouterr().err


def test_missing_key_whose_value_is_not_the_default_is_still_refused(run_a, capsys):
    _forget_newer_fields(run_a, {"data": {"max_image_pixels": 1000}})
    for line in both_commands(run_a, capsys):
        assert "was written before data.max_image_pixels existed (so with its default) where this run has " \
               "data.max_image_pixels=1000" in line, line


def test_method_knob_at_its_default_on_one_side_only_fits(run_a, capsys):
    """``method.params`` holds only the knobs a config set: ``{predictor: mlp}`` and ``{}`` are the same SimSiam;
    ``{normalize_input: true}`` is not."""
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    assert state["config"]["method"]["params"] == {}
    state["config"]["method"]["params"] = {"predictor": "mlp", "normalize_input": False}
    torch.save(state, path)
    assert main(["eval", str(run_a), "--no-progress"]) == 0, capsys.readouterr().err
    state["config"]["method"]["params"] = {"normalize_input": True}
    torch.save(state, path)
    for line in both_commands(run_a, capsys):
        assert "was written with method.normalize_input=True where this run has method.normalize_input=False" in line


def test_differences_reads_a_missing_key_as_its_default():
    """The one comparison of stored configs (config.differences), on hand-made mappings."""
    new = config.RunConfig().to_dict()
    old = config.RunConfig().to_dict()
    del old["data"]["stream"], old["data"]["workers"]
    assert config.differences(old, new) == []  # added since `old` was written; `new` holds the defaults
    new["data"]["workers"] = 3
    assert config.differences(old, new) == [("data.workers", config.NOT_SET, 3)]
    old["data"]["retired_field"] = 1  # removed from the config since: nothing reads it
    assert config.differences(old, new, ("data",)) == [("data.workers", config.NOT_SET, 3)]
    new["data"]["brand_new"] = 1  # no default known: `old` cannot have meant it
    assert ("data.brand_new", config.NOT_SET, 1) in config.differences(old, new)
    knobs = config.RunConfig().to_dict()
    knobs["method"]["params"] = {"predictor": "mlp"}
    old["method"]["params"], new["method"]["params"] = {"predictor": "mlp"}, {}
    assert config.differences(old, new, ("method",), knobs) == []
    assert config.differences(old, new, ("method",)) == []  # no default known and `new` lacks it: ignored
    assert config.differences(new, old, ("method",)) == [("method.predictor", config.NOT_SET, "mlp")]
    old["method"]["params"] = {"predictor": "linear"}
    assert config.differences(old, new, ("method",), knobs) == [("method.predictor", "linear", config.NOT_SET)]


def test_where_the_data_lives_and_how_many_processes_decode_it_may_change(run_a, capsys):
    """data.root and data.workers do not change results (siamlab/data/feed.py: the crops are a pure function of
    seed, epoch, step and rank, whatever the workers): --resume may set them, and a checkpoint written under
    other values fits; a setting that changes results still cannot be set."""
    path = run_a / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["data"].update(workers=3, root="/moved/elsewhere")
    torch.save(state, path)
    assert main(["eval", str(run_a), "--no-progress"]) == 0, capsys.readouterr().err
    for item in ("data.workers=0", f"data.root={run_a}"):
        assert main(["train", "--resume", str(run_a), "--set", item]) == 0, capsys.readouterr().err
    assert main(["train", "--resume", str(run_a), "--set", "data.views=3"]) == 2
    err = capsys.readouterr().err
    assert "--set data.views cannot change a run being resumed" in err and "data.root, data.workers" in err, err
