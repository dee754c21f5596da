"""siamlab.fit: a user's own nn.Module backbone and map-style Dataset (tensors or PIL, labels optional),
with siamlab's augmentation, diagnostics, checkpoints and exact resume; every bad input is one sentence."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import siamlab
from siamlab.cli import main
from siamlab.engine import user_run
from siamlab.engine.trainer import Trainer
from siamlab.errors import SiamlabError

TINY = dict(optim={"epochs": 2, "batch_size": 32}, model={"proj_hidden": 32, "proj_out": 16, "pred_hidden": 8},
            eval={"knn_k": 5}, diag={"every_steps": 2}, engine={"progress": False, "threads": 1})


class Images(torch.utils.data.Dataset):
    """n random images with a class-dependent brightness; items as ``kind``: tensor, uint8, pil, or (…, label)."""

    def __init__(self, n: int, kind: str = "tensor", labels: bool = True, seed: int = 0, side: int = 16):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 4, (n,), generator=g)
        self.x = (0.6 * torch.rand(n, 3, side, side, generator=g) + 0.1 * self.y.view(-1, 1, 1, 1)).clamp(0, 1)
        self.kind, self.labels = kind, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.kind == "uint8":
            x = (x * 255).round().to(torch.uint8)
        elif self.kind == "pil":
            x = Image.fromarray((x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        return (x, int(self.y[i])) if self.labels else x


def convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def records(run, kind: str) -> list:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_resume_is_exact_and_the_users_module_holds_the_trained_weights(tmp_path, monkeypatch):
    """2 epochs straight == 1 epoch, then siamlab.fit(..., resume=RUN) with a freshly built module (PIL items)."""
    data, test = Images(128, "pil"), Images(64, "pil", seed=1)
    bb_a = convnet()
    a = siamlab.fit(bb_a, data, "simsiam", str(tmp_path / "a"), test=test, **TINY)
    assert a.summary["status"] == "completed" and "knn_backbone" in a.summary["final"]
    assert records(a.run_dir, "diag") and records(a.run_dir, "eval")[0]["random_init"]
    saved = (a.run_dir / "config.yaml").read_text()
    assert "name: user" in saved and "backbone: user" in saved and "train_subset: 0" in saved

    def first_epoch_only(self):
        self.cfg.optim.epochs = 1  # the 2-epoch schedule, stopped after one (as tests/test_engine.py does)
        return Trainer.fit(self)

    with monkeypatch.context() as m:
        m.setattr(user_run.UserTrainer, "fit", first_epoch_only)
        half = siamlab.fit(convnet(), data, "simsiam", str(tmp_path / "b"), test=test, **TINY)
    assert half.summary["epochs_done"] == 1
    bb_b = convnet(seed=5)  # another initialization: the checkpoint replaces it
    b = siamlab.fit(bb_b, data, test=test, resume=str(half.run_dir), engine={"progress": False})
    assert b.summary["status"] == "completed" and b.summary["epochs_done"] == 2
    wa = torch.load(a.run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]
    wb = torch.load(b.run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    for k, v in bb_b.state_dict().items():  # trained in place
        assert torch.equal(v, wb[f"encoder.backbone.{k}"]), k


def test_unlabelled_data_trains_without_evaluation_or_probe_and_a_labelled_pair_evaluates(tmp_path):
    run = siamlab.fit(convnet(), Images(96, labels=False), "byol", str(tmp_path / "u"), **TINY).run_dir
    assert not records(run, "eval") and records(run, "diag")
    assert all("probe_acc" not in r for r in records(run, "train"))
    assert "online_probe: false" in (run / "config.yaml").read_text()
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    pair = (Images(64, "uint8", seed=2), Images(64, "uint8", seed=3))
    res = siamlab.fit(convnet(), Images(96, labels=False), {"name": "simclr", "tau": 0.2}, str(tmp_path / "p"),
                      test=pair, **TINY)
    assert 0 <= res.summary["final"]["knn_backbone"] <= 100
    inputs = json.loads((res.run_dir / "user_inputs.json").read_text())
    assert set(inputs["datasets"]) == {"dataset", "reference set", "test set"}
    assert inputs["datasets"]["dataset"]["labelled"] is False and inputs["out_dim"] == 8


def test_feature_size_is_discovered_given_or_refused():
    x = torch.rand(2, 3, 16, 16)
    assert user_run.out_dim_of(convnet(), x, None) == 8
    assert user_run.out_dim_of(convnet(), x, 11) == 11
    bb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    bb.train()
    with pytest.raises(SiamlabError, match=r"returns \(2, 4, 14, 14\).*AdaptiveAvgPool2d"):
        user_run.out_dim_of(bb, x, None)
    assert bb.training and int(bb[1].num_batches_tracked) == 0  # mode restored, statistics untouched
    with pytest.raises(SiamlabError, match="backbone failed on a batch.*shape \\(2, 3, 16, 16\\)"):
        user_run.out_dim_of(nn.Linear(5, 3), x, None)


class Items(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("items, message", [
    ([torch.randn(3, 8, 8)] * 4, r"values in \[.*\]; siamlab normalizes after its own augmentation"),
    ([np.zeros((8, 8, 3), np.uint8)] * 4, r"numpy.ndarray.*torch.from_numpy\(a\).permute\(2, 0, 1\)"),
    ([torch.rand(3, 8, 8), torch.rand(3, 9, 8)], r"item 1 is an image of shape \(3, 9, 8\) where item 0 is \(3, 8, 8\)"),
    ([(torch.rand(3, 8, 8), 1), torch.rand(3, 8, 8)], r"item 1 has no label where item 0 has one"),
    ([(torch.rand(3, 8, 8), -1)], r"label -1; a label must be an integer >= 0"),
    ([torch.rand(4, 8, 8)], r"shape \(4, 8, 8\); images must be \[C, H, W\] with C = 1 or 3"),
    ([{"pixels": torch.rand(3, 8, 8)}], r"mapping without an 'image' key"),
    ([], r"dataset is empty"),
])
def test_bad_items_are_one_sentence(tmp_path, items, message):
    with pytest.raises(SiamlabError, match=message):
        siamlab.fit(convnet(), Items(items), out=str(tmp_path / "x"), **TINY)
    assert not (tmp_path / "x").exists()  # refused before the run directory was made


@pytest.mark.parametrize("kwargs, message", [
    (dict(data={"name": "digits"}), "data.name cannot be set for siamlab.fit"),
    (dict(model={"backbone": "resnet18"}), "model.backbone cannot be set for siamlab.fit"),
    (dict(optimizer={"lr": 1}), "got the keyword optimizer=.*sections are data, model, optim"),
    (dict(optim=0.1), r"optim=0.1 is not valid: expected a mapping"),
    (dict(method="nope"), "unknown method 'nope'"),
    (dict(eval={"online_probe": True}, labels=False), "online_probe=true needs labels"),
    (dict(test=Images(32, labels=False)), "test set has no labels"),
])
def test_bad_arguments_are_one_sentence(tmp_path, kwargs, message):
    labels = kwargs.pop("labels", True)
    with pytest.raises(SiamlabError, match=message):
        siamlab.fit(convnet(), Images(64, labels=labels), out=str(tmp_path / "x"), **{**TINY, **kwargs})
    with pytest.raises(SiamlabError, match="backbone is a str"):
        siamlab.fit("resnet", Images(8))


def test_resume_refuses_other_data_another_module_and_changes(tmp_path, capsys):
    data = Images(64)
    run = siamlab.fit(convnet(), data, "simsiam", str(tmp_path / "r"), **{**TINY, "optim": {"epochs": 1, "batch_size": 32}}).run_dir
    with pytest.raises(SiamlabError, match="the dataset passed has other images or labels; pass the dataset it was started with"):
        siamlab.fit(convnet(), Images(64, seed=9), resume=str(run))
    with pytest.raises(SiamlabError, match="samples 32 instead of 64"):
        siamlab.fit(convnet(), Images(32), resume=str(run))
    with pytest.raises(SiamlabError, match="started without a test set and this call passes one"):
        siamlab.fit(convnet(), data, resume=str(run), test=Images(16))
    other = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(SiamlabError, match=r"does not fit this network: layer encoder.backbone.0.weight is \(8, 3, 3, 3\) in "
                                           r"the checkpoint but \(16, 3, 3, 3\)"):
        siamlab.fit(other, data, resume=str(run))
    with pytest.raises(SiamlabError, match="optim.lr cannot change a run being resumed"):
        siamlab.fit(convnet(), data, resume=str(run), optim={"lr": 1.0})
    with pytest.raises(SiamlabError, match="trains method 'simsiam', not 'byol'"):
        siamlab.fit(convnet(), data, "byol", resume=str(run))
    # the command line cannot load the user's objects: one sentence, for every command that would
    for argv in (["train", "--resume", str(run)], ["eval", str(run)], ["train", "--set", "data.name=user"],
                 ["train", "--set", "model.backbone=user"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "siamlab.fit" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert main(["analyze", str(run)]) == 0  # reading its metrics needs no objects


def test_readme_example_runs_as_written_and_resumes_with_the_objects_passed_again(tmp_path, monkeypatch):
    import copy
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "siamlab.fit(" in b]
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), ns)
    s = ns["result"].summary
    assert s["status"] == "completed" and s["epochs_done"] == 2 and 0 <= s["final"]["knn_backbone"] <= 100
    again = siamlab.fit(copy.deepcopy(ns["backbone"]), ns["data"], resume="runs/my-backbone", test=ns["test"],
                        engine={"progress": False})
    assert again.summary["status"] == "completed" and again.summary["steps"] == s["steps"]
    assert main(["analyze", "runs/my-backbone"]) == 0
