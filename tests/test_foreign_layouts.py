"""siamlab reads the checkpoints lightly, solo-learn, Lightning and DDP users have (issue 22, item 1).

The key lists and shapes come from the real libraries (tests/fixtures/foreign_layouts.json, written by
make_foreign_layouts.py beside lightly 1.6.0, solo-learn's source, pytorch_lightning 2.6.6 and torchvision
0.29.1): every model, under every prefix, is found where the library put it; and, filled with the values
the fixture's outputs were computed with, the networks siamlab rebuilds compute those same outputs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from siamlab.errors import DataError
from siamlab.interop import foreign
from siamlab.interop.layouts import load_model

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from layout_values import images, summary, value  # noqa: E402

LAYOUTS = json.loads((FIXTURES / "foreign_layouts.json").read_text())
MODELS = LAYOUTS["models"]
PREFIXES = list(dict.fromkeys([LAYOUTS["prefixes"]["ddp"], LAYOUTS["prefixes"]["torch.compile"], "model.", "encoder.",
                                "net.", "backbone.", "student.", "model.module.", "model.backbone._orig_mod."]))
SMALL = [n for n, e in MODELS.items() if sum(torch.Size(s).numel() for s in e["keys"].values()) <= 35e6]
LEFT_OUT = {  # what each library keeps beside the backbone and its projector, named in the note
    "lightly/example-byol-resnet18": {"prediction_head", "backbone_momentum", "projection_head_momentum"},
    "lightly/example-simsiam-resnet18": {"prediction_head"},
    "lightly/benchmark-simclr-resnet50": {"online_classifier"},
    "lightly/benchmark-byol-resnet50": {"prediction_head", "teacher_backbone", "teacher_projection_head", "online_classifier"},
    "lightly/benchmark-barlowtwins-resnet50": {"online_classifier"},
    "solo-learn/simclr-resnet18-imagenet100": {"classifier"},
    "solo-learn/byol-resnet18-imagenet100": {"classifier", "momentum_backbone", "momentum_projector", "predictor"},
    "solo-learn/simsiam-resnet18-imagenet100": {"classifier", "predictor"},
    "solo-learn/barlow_twins-resnet18-imagenet100": {"classifier"},
    "solo-learn/simsiam-resnet18-cifar10": {"classifier", "predictor"},
    "solo-learn/byol-resnet50-imagenet100": {"classifier", "momentum_backbone", "momentum_projector", "predictor"},
}


def shapes(name: str, prefix: str = "") -> dict:
    """The model's state dict as shapes only (meta tensors): what the key analysis reads."""
    return {prefix + k: torch.empty(s, device="meta") for k, s in MODELS[name]["keys"].items()}


def filled(name: str, prefix: str = "") -> dict:
    """The model's state dict with the values its fixture outputs were computed with; the parts siamlab does not
    read (momentum copies, classifiers, predictors) are zeros of their shapes, stored as one number each."""
    entry = MODELS[name]
    read = tuple(p for p in (entry["backbone"], entry["projector"]) if p is not None)
    return {prefix + k: value(k, s) if k.startswith(read) else torch.zeros((), dtype=value(k, ()).dtype).expand(s)
            for k, s in entry["keys"].items()}


def groups(strings: list) -> set:
    return {s.split(".*")[0].split(" ")[0] for s in strings}


def test_the_fixture_covers_every_library_and_records_its_versions():
    libs = {e["library"].split()[0] for e in MODELS.values()}
    assert libs == {"lightly", "solo-learn"} and len(MODELS) == 16
    assert LAYOUTS["versions"]["lightly"] == "1.6.0" and LAYOUTS["versions"]["torchvision"].startswith("0.29.1")
    assert LAYOUTS["prefixes"]["ddp"] == "module." and LAYOUTS["prefixes"]["torch.compile"] == "_orig_mod."
    assert {MODELS[n]["backbone_out"]["shape"][1] for n in MODELS} == {512, 2048}  # ResNet-18 and ResNet-50


@pytest.mark.parametrize("prefix", [""] + PREFIXES)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_layout_under_every_prefix_is_found_where_the_library_put_it(name, prefix):
    entry = MODELS[name]
    sd = shapes(name, prefix)
    bb = foreign.find_backbone(sd)
    assert bb is not None and bb.prefix == prefix + entry["backbone"]
    assert bb.kind == ("resnet-children" if name.startswith("lightly/example") else "torchvision-resnet")
    assert bb.padded_stem == name.endswith("cifar10")
    head = foreign.find_head(sd, bb.owner)
    if entry["projector"] is None:
        assert head is None
        return
    lightly = name.startswith("lightly")
    assert head.prefix == prefix + entry["projector"] + ("layers." if lightly else "")
    assert set(head.sd) == {k[len(entry["projector"]):].removeprefix("layers.") for k in entry["keys"] if k.startswith(entry["projector"])}
    used = bb.keys + [k for k in sd if k.startswith(head.prefix)]
    assert len(set(used)) == len(used)  # no key read twice (the backbone is not read as the projector: issue 22, found 2)
    assert groups(foreign.left_out(sd, used, bb)) == {prefix + g for g in LEFT_OUT.get(name, set())}


@pytest.mark.parametrize("name", SMALL)
def test_the_rebuilt_networks_compute_what_the_librarys_networks_computed(name, tmp_path):
    entry = MODELS[name]
    torch.save(filled(name), tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")
    x = images(2, 3, entry["input_size"])
    with torch.no_grad():
        h = model.backbone.eval()(x).flatten(1)
        outputs = {"backbone_out": h}
        if entry["projector"]:
            outputs["projector_out"] = model.projector.eval()(h)
    assert (model.projector is None) == (entry["projector"] is None)
    for key, out in outputs.items():
        got, want = summary(out), entry[key]
        assert got["shape"] == want["shape"], key
        assert got["norm"] == pytest.approx(want["norm"], rel=1e-4), key
        assert got["sum"] == pytest.approx(want["sum"], rel=1e-4, abs=1e-3), key
        assert got["row0"] == pytest.approx(want["row0"], rel=1e-3, abs=1e-4), key
    assert model.random_backbone is not None and (model.random_projector is None) == (model.projector is None)
    not_read = [n for n in model.notes if n.startswith("not read")]
    assert len(not_read) == bool(LEFT_OUT.get(name)) and all(f" {g}.* (" in not_read[0] for g in LEFT_OUT.get(name, ()))


def lightning_ckpt(state_dict: dict) -> dict:
    """A real Lightning .ckpt's top level (recorded by the fixture) around ``state_dict``."""
    def rebuild(obj):
        if isinstance(obj, dict) and "__tensor__" in obj:
            return torch.zeros((), dtype=getattr(torch, obj["dtype"])).expand(obj["__tensor__"])
        if isinstance(obj, dict):
            return {k: rebuild(v) for k, v in obj.items()}
        return [rebuild(v) for v in obj] if isinstance(obj, list) else obj

    return {**rebuild(LAYOUTS["lightning_checkpoint"]["top_level"]), "state_dict": state_dict}


@pytest.mark.parametrize("prefix", ["", "model.", "module.", "encoder.", "net."])
def test_a_lightning_checkpoint_under_any_module_prefix_reads_backbone_and_projector(prefix, tmp_path):
    """Issue 22, found 2: under model. / module. / encoder. / net. the projector is the one beside the backbone."""
    assert LAYOUTS["lightning_checkpoint"]["weights_only_loads"] is True  # as a real .ckpt: torch.load(weights_only=True)
    torch.save(lightning_ckpt(filled("solo-learn/simclr-resnet18-imagenet100", prefix)), tmp_path / "last.ckpt")
    model = load_model(tmp_path / "last.ckpt")
    assert model.layout == (f"torchvision-resnet under '{prefix}backbone.', projector under '{prefix}projector.'")
    assert [type(m).__name__ for m in model.projector] == ["Linear", "ReLU", "Linear"]
    assert model.notes == [f"not read (other parts of the file): {prefix}classifier.* (2)."]


def test_lightlys_backbone_and_head_saved_apart(tmp_path):
    """The example's ``backbone.state_dict()`` alone, with ``projection_head.state_dict()`` (``layers.*``) or the
    whole model's file given to --projector."""
    whole = filled("lightly/example-simsiam-resnet18")
    torch.save({k[len("backbone."):]: v for k, v in whole.items() if k.startswith("backbone.")}, tmp_path / "bb.pt")
    torch.save({k[len("projection_head."):]: v for k, v in whole.items() if k.startswith("projection_head.")}, tmp_path / "head.pt")
    torch.save(whole, tmp_path / "whole.pt")
    want = MODELS["lightly/example-simsiam-resnet18"]["projector_out"]
    for proj in ("head.pt", "whole.pt"):
        model = load_model(tmp_path / "bb.pt", projector=str(tmp_path / proj))
        assert model.layout == "resnet-children" and model.notes == []
        with torch.no_grad():
            p = model.projector.eval()(model.backbone.eval()(images()).flatten(1))
        assert summary(p)["norm"] == pytest.approx(want["norm"], rel=1e-4)


def test_a_projector_siamlab_cannot_rebuild_is_one_sentence_and_the_backbone_is_still_read(tmp_path):
    sd = filled("solo-learn/simclr-resnet18-imagenet100")
    sd["projector.1.weight"] = torch.ones(4096)  # a LayerNorm between the Linears: not a Linear/BN/ReLU MLP
    sd["projector.1.bias"] = torch.zeros(4096)
    torch.save({"state_dict": sd}, tmp_path / "ln.ckpt")
    model = load_model(tmp_path / "ln.ckpt")
    assert model.projector is None and model.layout == "torchvision-resnet under 'backbone.'"
    note, rest = model.notes
    assert note.startswith("the projector under 'projector.' is left out and the backbone diagnosed alone: ")
    assert "'1.weight'" in note and "TorchScript" in note and note.count(". ") == 0
    assert rest == "not read (other parts of the file): classifier.* (2)."  # the projector has its own sentence
    # a projector for another backbone width
    sd = filled("solo-learn/simclr-resnet18-imagenet100")
    sd["projector.0.weight"] = torch.zeros(4096, 2048)
    torch.save(sd, tmp_path / "wide.pt")
    note = load_model(tmp_path / "wide.pt").notes[0]
    assert "its first layer takes 2048 features where the backbone gives 512" in note
    # asked for by --projector: an error, not a note
    torch.save({k[len("projector."):]: v for k, v in torch.load(tmp_path / "ln.ckpt", weights_only=True)["state_dict"].items()
                if k.startswith("projector.")}, tmp_path / "ln-head.pt")
    with pytest.raises(DataError, match="'1.weight'"):
        load_model(tmp_path / "wide.pt", projector=str(tmp_path / "ln-head.pt"))


def test_lightlys_cifar_resnet_generator_gets_its_own_sentence(tmp_path):
    sd = {"backbone.0.weight": torch.zeros(64, 3, 3, 3), "backbone.1.running_mean": torch.zeros(64),
          "backbone.3.0.shortcut.0.weight": torch.zeros(128, 64, 1, 1)}
    torch.save(sd, tmp_path / "gen.pt")
    with pytest.raises(DataError, match="lightly's ResNetGenerator.*TorchScript"):
        load_model(tmp_path / "gen.pt")


def test_a_checkpoint_with_pickled_objects_names_them(tmp_path):
    import argparse

    torch.save({"state_dict": filled("lightly/example-backbone-resnet18"), "hparams": argparse.Namespace(lr=0.1)},
               tmp_path / "hp.ckpt")
    with pytest.raises(DataError, match="argparse.Namespace.*state_dict"):
        load_model(tmp_path / "hp.ckpt")


def test_a_siamlab_export_given_as_projector_file_gives_its_projector(tmp_path):
    """Wrappers are opened only where tensors are: an export's "model" entry is its config, not a state dict."""
    from siamlab import config
    from siamlab.interop.layouts import EXPORT_FORMAT
    from siamlab.models import build_encoder

    cfg = config.load(None, ["model.backbone=resnet18", "model.stem=cifar", "model.proj_hidden=16", "model.proj_out=8"])
    enc = build_encoder(cfg.model, (3, 8, 8))
    torch.save({"format": EXPORT_FORMAT, "model": {"backbone": "resnet18"}, "backbone": enc.backbone.state_dict(),
                "projector": enc.projector.state_dict()}, tmp_path / "export.pt")
    torch.save(enc.backbone.state_dict(), tmp_path / "bb.pt")
    model = load_model(tmp_path / "bb.pt", projector=str(tmp_path / "export.pt"))
    x = torch.randn(4, 512)
    torch.testing.assert_close(model.projector.eval()(x), enc.projector.eval()(x))
