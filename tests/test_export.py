"""siamlab export: torchvision layout (against a list made by torchvision itself), TorchScript without siamlab."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.engine.runlog import atomic_save, atomic_write_text
from siamlab.errors import SiamlabError
from siamlab.interop.export import export_run
from siamlab.interop.layouts import load_model
from siamlab.models import build_encoder

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnet_layout.json").read_text())


def fake_run(tmp_path, backbone="resnet18", stem="imagenet", in_shape=(3, 64, 64), name="run") -> tuple:
    """A run directory with a checkpoint of a freshly built encoder (no training needed for layouts)."""
    cfg = config.load(None, [f"model.backbone={backbone}", f"model.stem={stem}", "model.proj_hidden=32",
                             "model.proj_out=16", "model.width=8", "data.name=synthetic"])
    torch.manual_seed(0)
    enc = build_encoder(cfg.model, in_shape)
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode outputs depend on them
        for m in enc.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    run = tmp_path / name
    (run / "checkpoints").mkdir(parents=True)
    atomic_write_text(run / "config.yaml", config.dump(cfg))
    state = {"method": {f"encoder.{k}": v for k, v in enc.state_dict().items()}, "config": cfg.to_dict(), "step": 7}
    atomic_save(state, run / "checkpoints" / "last.pt")
    return run, enc


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_format_has_exactly_torchvisions_keys_shapes_and_dtypes(tmp_path, arch):
    run, enc = fake_run(tmp_path, arch)
    res = export_run(run, "torchvision")
    sd = torch.load(res["files"][0], weights_only=True)
    got = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()}
    assert list(got) == list(LAYOUT["models"][arch])  # same keys in the same order: strict=True loads
    assert got == LAYOUT["models"][arch]
    assert res["note"] == ""  # the ImageNet stem needs no change
    for k, v in enc.backbone.state_dict().items():
        assert torch.equal(sd[k], v), k
    assert not sd["fc.weight"].any() and not sd["fc.bias"].any()


def test_cifar_stem_differs_only_in_conv1_and_says_what_to_change(tmp_path):
    run, _ = fake_run(tmp_path, "resnet18", stem="cifar", in_shape=(1, 28, 28))
    res = export_run(run, "torchvision", num_classes=10)
    sd = torch.load(res["files"][0], weights_only=True)
    ref = LAYOUT["models"]["resnet18"]
    assert list(sd) == list(ref)
    diff = {k for k, v in sd.items() if list(v.shape) != ref[k][0]}
    assert diff == {"conv1.weight", "fc.weight", "fc.bias"}
    assert list(sd["conv1.weight"].shape) == [64, 1, 3, 3] and list(sd["fc.weight"].shape) == [10, 512]
    assert "nn.Conv2d(1, 64, 3, 1, 1, bias=False)" in res["note"] and "maxpool = torch.nn.Identity()" in res["note"]
    # the sentence is true: a ResNet built that way loads the file strictly
    from siamlab.models.resnet import resnet18

    net = resnet18(in_channels=3)
    net.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    net.fc = torch.nn.Linear(512, 10)
    net.load_state_dict(sd, strict=True)


def test_torchvision_format_of_a_convnet_is_one_sentence(tmp_path):
    run, _ = fake_run(tmp_path, "convnet", stem="cifar", in_shape=(3, 32, 32))
    with pytest.raises(SiamlabError, match="resnet18, resnet50, vit_tiny or vit_small.*model.backbone='convnet'.*state_dict or torchscript"):
        export_run(run, "torchvision")


def test_torchscript_runs_without_siamlab_and_matches_the_backbone(tmp_path):
    run, enc = fake_run(tmp_path, "resnet18", stem="cifar", in_shape=(3, 32, 32))
    res = export_run(run, "torchscript", out=str(tmp_path / "bb.pt"), projector=True)
    assert res["files"] == [str(tmp_path / "bb.pt"), str(tmp_path / "bb.projector.pt")]
    x = torch.randn(5, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys; sys.modules['siamlab'] = None\n"
            "try:\n    import siamlab\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('siamlab importable')\n"
            "import torch\n"
            "b = torch.jit.load(sys.argv[1]); p = torch.jit.load(sys.argv[2]); x = torch.load(sys.argv[3])\n"
            "h = b(x); torch.save({'h': h, 'z': p(h)}, sys.argv[4])\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code, *res["files"], str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    y = torch.load(tmp_path / "y.pt", weights_only=True)
    with torch.no_grad():
        h = enc.backbone.eval()(x)
        z = enc.projector.eval()(h)
    torch.testing.assert_close(y["h"], h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y["z"], z, rtol=1e-5, atol=1e-5)
    assert y["h"].shape == (5, 512)


def test_state_dict_format_round_trips_through_load_model(tmp_path):
    run, enc = fake_run(tmp_path, "convnet", stem="cifar", in_shape=(1, 28, 28))
    (path,) = export_run(run, "state_dict")["files"]
    model = load_model(path)
    assert model.layout == "siamlab export" and model.in_channels == 1
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.eval()(x), enc.backbone.eval()(x), rtol=0, atol=0)
        torch.testing.assert_close(model.projector.eval()(enc.backbone(x)), enc.projector.eval()(enc.backbone(x)))


def test_export_cli_bad_input_is_one_sentence(tmp_path, capsys):
    from siamlab.cli import main

    assert main(["export", str(tmp_path / "nope"), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a siamlab run directory" in err[0]
    run, _ = fake_run(tmp_path)
    assert main(["export", str(run), "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at" in err and "best.pt" in err and "try --checkpoint last" in err
    (run / "checkpoints" / "last.pt").unlink()  # neither: suggesting the missing one would be wrong
    for which in ("last", "best"):
        assert main(["export", str(run), "--checkpoint", which]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{which}.pt" in err[0] and "--checkpoint last" not in err[0], err
        assert "has saved no checkpoint yet" in err[0]


def test_every_export_loads_as_the_docstring_says(tmp_path):
    """State dicts with torch.load(weights_only=True), TorchScript with torch.jit.load (module docstring)."""
    import warnings

    run, _ = fake_run(tmp_path, "convnet", stem="cifar", in_shape=(1, 8, 8))
    files = export_run(run, "state_dict", projector=True)["files"]
    files += export_run(fake_run(tmp_path, name="run18")[0], "torchvision", projector=True)["files"]
    assert len(files) == 3
    for f in files:
        assert isinstance(torch.load(f, weights_only=True), dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for f in export_run(run, "torchscript", projector=True)["files"]:
            assert isinstance(torch.jit.load(f), torch.jit.ScriptModule)
