"""siamlab diagnose end to end: on an export of a trained run, on TorchScript, on foreign layouts, on wrong keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from siamlab import config
from siamlab.interop.diagnose import collapse_verdict, diagnose, summary_text
from siamlab.interop.export import export_run, trace
from siamlab.interop.layouts import load_model

ROOT = Path(__file__).resolve().parents[1]
TINY = ["method.name=simsiam", "data.name=digits", "model.backbone=convnet", "model.width=8", "model.proj_hidden=32",
        "model.proj_out=16", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "eval.knn_k=10",
        "engine.progress=false", "diag.every_steps=5"]
DIGITS = ["eval.knn_k=10"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from siamlab.engine.trainer import train

    out = tmp_path_factory.mktemp("diag")
    cfg = config.load(None, TINY + [f"engine.out={out}", "engine.run_name=run"])
    res = train(cfg)
    assert res.summary["status"] == "completed"
    return out / "run", res.summary


def test_diagnose_an_exported_backbone_reproduces_the_runs_evaluation(trained_run, tmp_path):
    run, summary = trained_run
    (path,) = export_run(run, "state_dict")["files"]
    res = diagnose(path, overrides=DIGITS, out_dir=str(tmp_path / "d"))  # the data comes from the file
    trained, rnd = res["networks"]["trained"], res["networks"]["random_init"]
    # the same clean features and kNN as the run's own final evaluation
    for key in ("knn_backbone", "knn_projector", "ncm_backbone", "l_bound_projector", "sigma_i_projector",
                "rankme_projector", "alpha_req_backbone", "lidar_projector", "lidar_backbone"):  # LiDAR: the same views
        assert trained["metrics"][key] == pytest.approx(summary["final"][key], rel=1e-6, abs=1e-9), key
    assert trained["metrics"]["knn_backbone"] != rnd["metrics"]["knn_backbone"]  # a different (random) network
    d = res["networks"]["trained"]["dims"]["projector"]
    m = trained["metrics"]
    assert m["std_scaled_projector"] == pytest.approx(m["std_projector"] * d ** 0.5)
    assert len(trained["spectra"]["projector"]) == d and 1.0 <= m["erank_projector"] <= d
    assert trained["verdict"]["verdict"] in ("collapsed", "not collapsed") and res["output"] == "projector"
    saved = json.loads((tmp_path / "d" / "diagnosis.json").read_text())
    assert saved["networks"]["trained"]["metrics"] == pytest.approx(m)
    html = (tmp_path / "d" / "diagnosis.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "random init" in html and "<script" not in html


def test_diagnose_a_torchscript_file_and_a_torchvision_state_dict(trained_run, tmp_path):
    run, summary = trained_run
    model = load_model(run)  # the run directory: its checkpoint
    ts = tmp_path / "bb.ts.pt"
    trace(model.backbone, torch.randn(2, 1, 8, 8)).save(str(ts))
    res = diagnose(ts, data="digits", overrides=DIGITS, out_dir=str(tmp_path / "ts"))
    assert res["layout"] == "torchscript" and res["output"] == "backbone"
    assert res["networks"]["trained"]["metrics"]["knn_backbone"] == pytest.approx(summary["final"]["knn_backbone"])
    # a torchvision-style ResNet-18 under "module.backbone.", wrapped like a Lightning checkpoint, with a projector
    from siamlab.models import build_encoder

    cfg = config.load(None, ["model.backbone=resnet18", "model.stem=cifar", "model.proj_hidden=16", "model.proj_out=8"])
    enc = build_encoder(cfg.model, (3, 8, 8))
    sd = {f"module.backbone.{k}": v for k, v in enc.backbone.state_dict().items()}
    sd.update({f"module.projector.{k}": v for k, v in enc.projector.state_dict().items()})
    sd["module.backbone.fc.weight"] = torch.zeros(10, 512)
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "foreign.ckpt")
    res = diagnose(tmp_path / "foreign.ckpt", data="digits", overrides=DIGITS + ["data.train_subset=300"], out_dir=str(tmp_path / "tv"))
    assert res["layout"] == "torchvision-resnet under 'module.backbone.', projector under 'module.projector.'"
    assert res["output"] == "projector" and res["notes"] == ["not read (other parts of the file): module.backbone.fc.* (1)."]
    assert res["train_samples"] == 300 and res["networks"]["trained"]["dims"] == {"backbone": 512, "projector": 8}


class Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], 16) + 0.0 * x.flatten(1).mean(1, keepdim=True)


def test_a_collapsed_model_gets_the_collapsed_verdict(tmp_path):
    torch.jit.script(Constant()).save(str(tmp_path / "const.pt"))
    res = diagnose(tmp_path / "const.pt", data="digits", overrides=DIGITS, out_dir=str(tmp_path / "c"))
    v = res["networks"]["trained"]["verdict"]
    assert v["verdict"] == "collapsed" and v["std_scaled"] == pytest.approx(0.0, abs=1e-6)
    m = res["networks"]["trained"]["metrics"]
    assert m["m_o_backbone"] == pytest.approx(1.0)
    assert m["rankme_backbone"] == pytest.approx(1.0, abs=1e-3)  # RankMe: one vector is rank one
    assert "lidar_backbone" not in m and "alpha_req_backbone" not in m  # no between-image spread, no variance


class Plane(nn.Module):
    """Outputs on a 2-dimensional plane of a 16-dimensional space: spread, but only two directions."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 16, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, 20:22] @ self.w


def test_a_model_on_a_plane_gets_the_dimensional_collapse_verdict(tmp_path):
    torch.jit.script(Plane()).save(str(tmp_path / "plane.pt"))
    res = diagnose(tmp_path / "plane.pt", data="digits", overrides=DIGITS, out_dir=str(tmp_path / "p"))
    v, m = res["networks"]["trained"]["verdict"], res["networks"]["trained"]["metrics"]
    assert m["erank_backbone"] <= 2.0 + 1e-6 and m["std_scaled_backbone"] > 0.1 and m["m_r_backbone"] > 0.05
    assert v["verdict"] == "dimensional collapse" and v["erank_min"] == 8  # max(2, min(K - 1 = 9, d/2 = 8))
    assert m["rankme_backbone"] <= 2.0 + 1e-3 and m["lidar_backbone"] <= 2.0 + 1e-3  # two directions at most
    assert m["alpha_req_backbone"] == float("inf")  # two nonzero eigenvalues: faster than any power law
    assert "rankme_backbone" in summary_text(res) and "lidar_backbone" in summary_text(res)


def test_collapse_verdict_reads_the_chosen_output():
    spread = {"std_scaled_backbone": 0.9, "m_r_backbone": 0.9, "std_scaled_projector": 0.01, "m_r_projector": 0.01}
    assert collapse_verdict(spread, "backbone")["verdict"] == "not collapsed"
    assert collapse_verdict(spread, "projector")["verdict"] == "collapsed"


def run_cli(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "siamlab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wrong_keys_get_one_sentence_naming_the_layouts(tmp_path):
    torch.save({"encoder.layers.0.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)}, tmp_path / "odd.pt")
    r = run_cli("diagnose", str(tmp_path / "odd.pt"), "--data", "digits")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: ")
    for words in ("'encoder.layers.0.weight'", "match no layout", "siamlab checkpoint", "torchvision-style ResNet-18/50",
                  "TorchScript"):
        assert words in lines[0], words
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    r = run_cli("diagnose", str(tmp_path / "junk.pt"), "--data", "digits")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "junk.pt" in r.stderr


def test_diagnose_reads_a_streamed_image_folder_as_the_in_memory_one(tmp_path):
    """`--set data.stream=true` (a StreamDataset: in_shape and clean_batches, no x) gives the same numbers as the
    folder decoded into memory: both embed the same clean squares."""
    from test_stream import data_sets, make_folder

    folder = make_folder(tmp_path / "imgs", n_train=40, n_val=16)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    trace(net, torch.randn(2, 3, 16, 16)).save(str(tmp_path / "net.ts.pt"))  # TorchScript: channels found by trying
    sets = [s for s in data_sets(folder) if not s.startswith("data.name=")] + ["eval.knn_k=5"]
    runs = {stream: diagnose(tmp_path / "net.ts.pt", data="image_folder", overrides=sets + [f"data.stream={stream}"],
                             out_dir=str(tmp_path / f"s{stream}"))
            for stream in ("false", "true")}
    mem, streamed = (runs[s]["networks"]["trained"]["metrics"] for s in ("false", "true"))
    assert runs["true"]["train_samples"] == 40 and runs["true"]["test_samples"] == 16
    assert streamed["knn_backbone"] == pytest.approx(mem["knn_backbone"])
    assert streamed["std_scaled_backbone"] == pytest.approx(mem["std_scaled_backbone"], rel=1e-6)


def diagnose_error(capsys, *args) -> str:
    """`siamlab diagnose ARGS` in this process: exit status 2 and one line on stderr, which is returned."""
    from siamlab.cli import main

    assert main(["diagnose", *args, "--data", "digits", "--out", os.devnull]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: "), lines
    return lines[0]


def test_weights_that_do_not_fit_their_layout_are_one_sentence_naming_the_key(tmp_path, capsys):
    from test_export import fake_run

    # a torchvision-style ResNet-18 whose projector has a LayerNorm (siamlab reads Linear / BatchNorm1d / ReLU MLPs),
    # given with --projector: asked for, so an error (inside a checkpoint it is a note: test_foreign_layouts.py)
    from siamlab.models.resnet import resnet18

    torch.save(resnet18(in_channels=1, stem="cifar").state_dict(), tmp_path / "bb.pt")
    head = nn.Sequential(nn.Linear(512, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 8))
    torch.save({f"projector.{k}": v for k, v in head.state_dict().items()}, tmp_path / "ln.pt")
    err = diagnose_error(capsys, str(tmp_path / "bb.pt"), "--projector", str(tmp_path / "ln.pt"))
    assert "projector" in err and "'1.weight'" in err and "ln.pt" in err and "TorchScript" in err
    # a siamlab export edited by hand: a backbone layer removed, and a projector BN without num_batches_tracked
    run, _ = fake_run(tmp_path, "convnet", stem="cifar", in_shape=(1, 8, 8))
    (path,) = export_run(run, "state_dict")["files"]
    obj = torch.load(path, weights_only=True)
    gone = next(iter(obj["backbone"]))
    del obj["backbone"][gone]
    torch.save(obj, tmp_path / "edited.pt")
    err = diagnose_error(capsys, str(tmp_path / "edited.pt"))
    assert f"'{gone}'" in err and "missing" in err and "edited.pt" in err and "siamlab export" in err
    obj = torch.load(path, weights_only=True)
    nbt = next(k for k in obj["projector"] if k.endswith("num_batches_tracked"))
    del obj["projector"][nbt]
    torch.save(obj, tmp_path / "no_nbt.pt")
    err = diagnose_error(capsys, str(tmp_path / "no_nbt.pt"))
    assert f"'{nbt}'" in err and "missing" in err
    # a training checkpoint whose projector lost a layer
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    gone = next(k for k in state["method"] if k.startswith("encoder.projector."))
    del state["method"][gone]
    torch.save(state, run / "checkpoints" / "last.pt")
    err = diagnose_error(capsys, str(run))
    assert f"'{gone[len('encoder.projector.'):]}'" in err and "last.pt" in err


def test_set_items_are_read_as_train_reads_them(tmp_path):
    """diagnose's --set goes through config.apply_overrides (spaces stripped, values parsed as YAML), limited
    to data.* and eval.* fields."""
    from siamlab.errors import ConfigError, DataError

    torch.jit.script(Constant()).save(str(tmp_path / "const.pt"))
    res = diagnose(tmp_path / "const.pt", data="digits", overrides=[" data.train_subset = 300 ", "eval.knn_k= 5"],
                   out_dir=str(tmp_path / "c"))
    assert res["train_samples"] == 300
    with pytest.raises(DataError, match="data.\\* and eval.\\* fields only"):
        diagnose(tmp_path / "const.pt", data="digits", overrides=["optim.lr=0.1"])
    with pytest.raises(ConfigError, match="--set data.train_subset"):
        diagnose(tmp_path / "const.pt", data="digits", overrides=["data.train_subset=[1"])


def test_a_projector_diagnose_cannot_use_is_one_printed_sentence(tmp_path, capsys):
    """Inside the checkpoint, a projector siamlab cannot rebuild is said once and the backbone diagnosed alone."""
    from siamlab.cli import main
    from siamlab.models.resnet import resnet18

    sd = {f"backbone.{k}": v for k, v in resnet18(in_channels=1, stem="cifar").state_dict().items()}
    head = nn.Sequential(nn.Linear(512, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 8))
    sd.update({f"projector.{k}": v for k, v in head.state_dict().items()})
    torch.save({"state_dict": sd}, tmp_path / "ln.ckpt")
    assert main(["diagnose", str(tmp_path / "ln.ckpt"), "--data", "digits", "--set", "data.train_subset=200",
                 "--set", "eval.knn_k=10", "--out", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: the projector under 'projector.' is left out") and "'1.weight'" in notes[0]
    assert "(torchvision-resnet under 'backbone.')" in out and "verdict (trained, backbone)" in out
    assert json.loads((tmp_path / "d" / "diagnosis.json").read_text())["notes"] == [n[len("note: "):] for n in notes]
