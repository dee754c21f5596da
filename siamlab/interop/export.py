"""``siamlab export RUN``: the trained backbone (and projector) in a form other tools load.

Formats:

* ``torchvision``: a plain state dict with exactly the keys and shapes of
  ``torchvision.models.resnet18()`` / ``resnet50()`` (tested against a list made with torchvision 0.29.1,
  tests/fixtures/torchvision_resnet_layout.json), so ``model.load_state_dict(sd, strict=True)`` works for
  the ImageNet stem. ``fc.weight`` / ``fc.bias`` are zeros of ``num_classes`` (default 1000) rows: no
  ImageNet classifier was trained, replace ``fc`` or train a probe. :data:`CIFAR_STEM_NOTE` says what to
  change for the CIFAR stem. A ViT gets a zero ``heads.head`` the same way and loads strictly into
  ``torchvision.models.VisionTransformer`` built with the arguments :func:`vit_note` prints (keys and shapes
  tested against tests/fixtures/torchvision_vit_layout.json; outputs by scripts/check_vit_torchvision.py).
* ``state_dict``: ``{"format": "siamlab-export", "backbone", "projector", "model", "data", "in_shape", ...}``,
  which ``siamlab diagnose`` and :func:`siamlab.interop.layouts.load_model` rebuild without the run.
* ``torchscript``: ``torch.jit.trace`` of the backbone in eval mode; runs with plain ``torch.jit.load``,
  siamlab not installed. Input: images as siamlab evaluates them (``Augment.clean``: [0, 1], resized,
  normalized by the training data's per-channel mean and std); output: pooled features.

With ``projector=True`` the projector goes into the state_dict file, and into a second file
``<name>.projector<suffix>`` for the other two formats (a Sequential MLP state dict / TorchScript).
All files are written atomically (:mod:`siamlab.report.files`). The ``torchvision`` and ``state_dict`` files
hold tensors and plain containers only, so they load with ``torch.load(weights_only=True)`` (as
``siamlab diagnose`` reads them); the ``torchscript`` files load with ``torch.jit.load``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError, SiamlabError
from ..report.files import write_result
from .layouts import EXPORT_FORMAT, build_siamlab_encoder, read_file

FORMATS = ("torchvision", "state_dict", "torchscript")
CIFAR_STEM_NOTE = ("this backbone has the CIFAR stem: before load_state_dict set model.conv1 = "
                   "torch.nn.Conv2d({c}, 64, 3, 1, 1, bias=False) and model.maxpool = torch.nn.Identity().")


def _checkpoint(run_dir: Path, which: str) -> dict:
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        if which != "last" and (run_dir / "checkpoints" / "last.pt").is_file():
            raise SiamlabError(f"no checkpoint at {path}: best.pt is written when an evaluation improves the kNN "
                               "accuracy and this run has none yet; try --checkpoint last.")
        raise SiamlabError(f"no checkpoint at {path}: the run has saved no checkpoint yet (last.pt is written every "
                           "engine.checkpoint_every_epochs epochs, at the end and when the run is stopped); export it "
                           "once it has.")
    state = read_file(path)
    if not (isinstance(state, dict) and isinstance(state.get("method"), dict) and isinstance(state.get("config"), dict)):
        raise SiamlabError(f"{path} is not a siamlab training checkpoint (no method weights and config).")
    return state


TORCHVISION_HEADS = {"resnet18": "fc", "resnet50": "fc", "vit_tiny": "heads.head", "vit_small": "heads.head"}


def torchvision_state(backbone: nn.Module, model_cfg, num_classes: int = 1000) -> dict:
    """The backbone's state dict in torchvision's ResNet / VisionTransformer layout, with a zero classifier
    (``fc`` / ``heads.head``) of ``num_classes`` rows."""
    head = TORCHVISION_HEADS.get(model_cfg.backbone)
    if head is None:
        raise ConfigError(f"--format torchvision needs a resnet18, resnet50, vit_tiny or vit_small backbone, this run "
                          f"has model.backbone={model_cfg.backbone!r}; use --format state_dict or torchscript.")
    sd = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    sd[f"{head}.weight"] = torch.zeros(num_classes, backbone.out_dim)
    sd[f"{head}.bias"] = torch.zeros(num_classes)
    return sd


def vit_note(vit, num_classes: int = 1000) -> str:
    """How to build the torchvision VisionTransformer that loads a ViT export strictly."""
    enc = vit.encoder
    layers, block = len(enc.layers), enc.layers[0]
    c = vit.conv_proj.in_channels
    note = (f"load it into torchvision.models.VisionTransformer(image_size={vit.image_size}, patch_size={vit.patch_size}, "
            f"num_layers={layers}, num_heads={block.self_attention.num_heads}, hidden_dim={vit.hidden_dim}, "
            f"mlp_dim={block.mlp[0].out_features}, num_classes={num_classes})")
    if c != 3:
        note += (f", after setting model.conv_proj = torch.nn.Conv2d({c}, {vit.hidden_dim}, {vit.patch_size}, "
                 f"stride={vit.patch_size}) ({c}-channel images)")
    return note + "."


def torchvision_note(backbone: nn.Module, num_classes: int) -> str:
    """What to change in torchvision to load the export: the CIFAR stem's conv1, a ViT's constructor."""
    if hasattr(backbone, "conv_proj"):
        return vit_note(backbone, num_classes)
    if backbone.conv1.weight.shape[-1] == 3:
        return CIFAR_STEM_NOTE.format(c=backbone.conv1.weight.shape[1])
    return ""


def trace(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of ``module`` in eval mode (BN uses its running statistics), checked on ``example``."""
    import warnings

    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript; it still loads everywhere
        # torch's own nn.MultiheadAttention (a ViT) warns about its shape checks while traced; the trace is
        # checked, and tests/test_vit.py runs it on other batch sizes
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.")
        return torch.jit.trace(module, example, check_trace=True)


def _save(obj, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (made in memory first; :mod:`siamlab.report.files`)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_result(path, buf.getbuffer())


def _save_script(module, path: Path) -> None:
    """``module.save`` (a TorchScript archive) to ``path`` atomically."""
    write_result(path, module.save_to_buffer())


def export_run(run_dir, fmt: str = "torchvision", checkpoint: str = "last", out: Optional[str] = None,
               projector: bool = False, num_classes: int = 1000) -> dict:
    """Write the run's backbone in ``fmt``; returns ``{"files": [...], "note": str}`` (note: what to change
    in torchvision for a CIFAR stem, how to build its ViT, else empty)."""
    from ..config import from_dict

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not valid: expected one of {', '.join(FORMATS)}.")
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise SiamlabError(f"{str(run_dir)!r} is not a siamlab run directory (no config.yaml); pass the folder printed by `siamlab train`.")
    state = _checkpoint(run_dir, checkpoint)
    cfg = from_dict({k: v for k, v in state["config"].items() if k in ("model", "data")})
    enc, _ = build_siamlab_encoder(cfg, state["method"], repr(str(run_dir / "checkpoints" / f"{checkpoint}.pt")))
    backbone, proj = enc.backbone.eval(), enc.projector.eval()
    suffix = {"torchvision": ".pt", "state_dict": ".pt", "torchscript": ".torchscript.pt"}[fmt]
    path = Path(out) if out else run_dir / "export" / f"backbone-{fmt}-{checkpoint}{suffix}"
    extra = path.with_name(path.name.split(".")[0] + ".projector" + "".join(path.suffixes))
    files, note = [path], ""
    if fmt == "torchvision":
        _save(torchvision_state(backbone, cfg.model, num_classes), path)
        if projector:
            _save(proj.state_dict(), extra)
            files.append(extra)
        note = torchvision_note(backbone, num_classes)
    elif fmt == "state_dict":
        _save({"format": EXPORT_FORMAT, "version": 1, "backbone": backbone.state_dict(), "projector": proj.state_dict(),
               "model": state["config"]["model"], "data": state["config"].get("data") or {},
               "in_shape": list(enc.in_shape), "method": state["config"].get("method", {}).get("name", ""),
               "run": str(run_dir), "checkpoint": checkpoint, "step": int(state.get("step", 0))}, path)
    else:
        example = torch.randn(2, *enc.in_shape)
        _save_script(trace(backbone, example), path)
        if projector:
            with torch.no_grad():
                h = backbone(example)
            _save_script(trace(proj, h), extra)
            files.append(extra)
    return {"files": [str(f) for f in files], "note": note}
