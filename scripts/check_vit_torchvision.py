"""Check that `siamlab export --format torchvision` of a ViT loads strictly into torchvision's own
VisionTransformer and gives identical outputs.

torchvision does not install beside the torch siamlab is developed on, so the check runs in two interpreters:

    python3 -m venv /work/venvs/tv && /work/venvs/tv/bin/pip install torch==2.14.1 torchvision==0.29.1
    PYTHONPATH=$PWD python3 scripts/check_vit_torchvision.py --torchvision-python /work/venvs/tv/bin/python

Stage 1 (this interpreter, siamlab): for each case, a siamlab encoder with a ViT backbone whose weights are
perturbed away from their initialization is written as a run directory, exported with
:func:`siamlab.interop.export.export_run` (what `siamlab export RUN --format torchvision` runs), and its
eval-mode features of fixed random images are saved. Stage 2 (``--load DIR`` in the torchvision interpreter,
no siamlab import): torchvision's ``VisionTransformer`` is built as the export's note says, loads the file with
``strict=True``, its classifier is replaced by ``nn.Identity()`` and its outputs are compared with siamlab's.
Exit status 0 when every case loads strictly and matches bit for bit.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = [  # (name, backbone, in_shape, patch)
    ("vit_tiny-fashion_mnist-28px-patch7-1ch", "vit_tiny", (1, 28, 28), 7),
    ("vit_tiny-cifar-32px-patch4", "vit_tiny", (3, 32, 32), 4),
    ("vit_small-imagenet-224px-patch16", "vit_small", (3, 224, 224), 16),
]


def export_cases(out: Path) -> None:
    import torch

    from siamlab import config
    from siamlab.engine.runlog import atomic_save, atomic_write_text
    from siamlab.interop.export import export_run
    from siamlab.models import build_encoder

    for name, backbone, in_shape, patch in CASES:
        cfg = config.load(None, [f"model.backbone={backbone}", f"model.patch_size={patch}", "model.proj_hidden=32",
                                 "model.proj_out=16", "data.name=synthetic"])
        torch.manual_seed(0)
        enc = build_encoder(cfg.model, in_shape)
        with torch.no_grad():  # away from the init (LayerNorms at 1/0, zero class token): every weight matters
            for p in enc.backbone.parameters():
                p.add_(0.02 * torch.randn_like(p))
        run = out / name
        (run / "checkpoints").mkdir(parents=True)
        atomic_write_text(run / "config.yaml", config.dump(cfg))
        atomic_save({"method": {f"encoder.{k}": v for k, v in enc.state_dict().items()}, "config": cfg.to_dict(),
                     "step": 1}, run / "checkpoints" / "last.pt")
        res = export_run(run, "torchvision", num_classes=10)
        x = torch.randn(4, *in_shape)
        with torch.no_grad():
            h = enc.backbone.eval()(x)
        torch.save({"x": x, "h": h}, run / "io.pt")
        (run / "case.json").write_text(json.dumps({"file": res["files"][0], "note": res["note"]}))
        print(f"{name}: exported {res['files'][0]}\n  note: {res['note']}")


def load_cases(out: Path) -> int:
    """Stage 2: torchvision only."""
    import torch
    import torchvision
    from torchvision.models import VisionTransformer

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    failures = 0
    for name, *_ in CASES:
        case = json.loads((out / name / "case.json").read_text())
        args = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", case["note"].split(")")[0]))
        model = VisionTransformer(**args)
        conv = re.search(r"Conv2d\((\d+), (\d+), (\d+), stride=(\d+)\)", case["note"])
        if conv:
            c, hid, k, s = map(int, conv.groups())
            model.conv_proj = torch.nn.Conv2d(c, hid, k, stride=s)
        sd = torch.load(case["file"], weights_only=True)
        missing, unexpected = model.load_state_dict(sd, strict=True)
        model.heads = torch.nn.Identity()
        io = torch.load(out / name / "io.pt", weights_only=True)
        with torch.no_grad():
            got = model.eval()(io["x"])
        diff = (got - io["h"]).abs().max().item()
        same = torch.equal(got, io["h"])
        failures += not same
        print(f"{name}: VisionTransformer({', '.join(f'{k}={v}' for k, v in args.items())}) strict load ok "
              f"({len(sd)} tensors); outputs {tuple(got.shape)} {'identical' if same else 'DIFFER'} (max |diff| {diff:.3g})")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torchvision-python", help="interpreter with torchvision (stage 2)")
    ap.add_argument("--load", metavar="DIR", help="stage 2 only: load and compare the exports in DIR")
    a = ap.parse_args()
    if a.load:
        return load_cases(Path(a.load))
    if not a.torchvision_python:
        ap.error("--torchvision-python is required (an interpreter with torchvision installed)")
    with tempfile.TemporaryDirectory() as tmp:
        export_cases(Path(tmp))
        return subprocess.run([a.torchvision_python, __file__, "--load", tmp]).returncode


if __name__ == "__main__":
    sys.exit(main())
