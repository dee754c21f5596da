"""Read a model file siamlab did not necessarily write: which layout it has, and the networks in it.

Known layouts (:data:`EXPECTED`):

* a siamlab training checkpoint (``RUN/checkpoints/last.pt``, or the run directory itself);
* a siamlab export (``siamlab export --format state_dict``: backbone, projector, model config);
* a torchvision-style ResNet-18/50 state dict (``conv1.weight``, ``layer1.0.conv1.weight`` ... as
  ``torchvision.models.resnet18().state_dict()`` or ``siamlab export --format torchvision`` writes it),
  possibly wrapped (``{"state_dict": ...}``, ``{"model": ...}``) and under a prefix such as
  ``module.``, ``backbone.`` or ``encoder.`` (solo-learn, lightly and DDP checkpoints); ``fc.*`` is
  dropped. A projector under ``projector.`` is read as an MLP (:func:`mlp_from_state_dict`);
* a whole TorchScript module (``torch.jit.save``), mapping normalized images to features.

Files are read with ``torch.load(weights_only=True)`` (no pickled code runs); TorchScript archives are
recognized by their ``code/`` entries and opened with ``torch.jit.load``.
"""
from __future__ import annotations

import copy
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import DataError

EXPORT_FORMAT = "siamlab-export"
EXPECTED = ("a siamlab checkpoint or run directory, a `siamlab export --format state_dict` file, a torchvision-style "
            "ResNet-18/50 state dict (conv1.weight, layer1.0.conv1.weight, ...; optionally under module., backbone. or "
            "encoder.), or a TorchScript module (torch.jit.save)")
_PREFIXES = ("", "module.", "backbone.", "encoder.", "model.", "encoder.backbone.", "module.backbone.",
             "model.backbone.", "net.", "online_network.encoder.", "student.backbone.")


@dataclass
class LoadedModel:
    """Networks read from a file: ``backbone`` (images → pooled features), optional ``projector``;
    ``layout`` names what was recognized; ``in_channels`` (None when unknown, e.g. TorchScript);
    ``model_cfg`` / ``data_cfg`` dicts when the file carries siamlab's config."""

    layout: str
    backbone: nn.Module
    projector: Optional[nn.Module] = None
    in_channels: Optional[int] = None
    model_cfg: dict = field(default_factory=dict)
    data_cfg: dict = field(default_factory=dict)
    random_backbone: Optional[nn.Module] = None
    random_projector: Optional[nn.Module] = None


def is_torchscript(path: Path) -> bool:
    """True for a ``torch.jit.save`` archive (a zip holding ``<name>/code/...``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())


def read_file(path: Path):
    """``torch.load(weights_only=True)`` of ``path`` or one sentence saying why it cannot be read."""
    if not path.is_file():
        raise DataError(f"model file {str(path)!r} does not exist; pass a checkpoint, state dict or TorchScript file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{str(path)!r} is not a readable PyTorch file with weights only ({type(err).__name__}); "
                        f"expected {EXPECTED}.") from None


def _shape(v) -> tuple:
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def load_strict(module: nn.Module, sd: dict, what: str, fix: str) -> None:
    """``module.load_state_dict(sd, strict=True)``, or one DataError sentence: ``what`` (e.g. "the backbone
    weights of 'x.pt'") does not fit, naming the first key missing from ``sd``, unexpected in it or of
    another shape, then ``fix``."""
    try:
        module.load_state_dict(sd, strict=True)
        return
    except RuntimeError:
        own = module.state_dict()
    missing = [f"key {k!r} is missing" for k in own if k not in sd]
    unexpected = [f"key {k!r} is unexpected" for k in sd if k not in own]
    shapes = [f"key {k!r} has shape {_shape(sd[k])} where the network has {_shape(own[k])}"
              for k in own if k in sd and _shape(sd[k]) != _shape(own[k])]
    found = missing + unexpected + shapes or ["a value does not load"]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise DataError(f"{what} do not fit the {type(module).__name__} siamlab builds for them: {found[0]}{more}; {fix}.")


# --- torchvision-style ResNet -------------------------------------------------------------------
def resnet_depth(sd: dict) -> Optional[str]:
    """"resnet18" / "resnet50" from the block counts of a torchvision-style state dict (no prefix); None if neither."""
    blocks = [len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
    bottleneck = "layer1.0.conv3.weight" in sd
    if blocks == [2, 2, 2, 2] and not bottleneck:
        return "resnet18"
    if blocks == [3, 4, 6, 3] and bottleneck:
        return "resnet50"
    return None


def build_resnet(sd: dict):
    """(siamlab ResNet with the state dict's depth, stem and input channels, in_channels); DataError if not ResNet-18/50."""
    from ..models.resnet import resnet18, resnet50

    name = resnet_depth(sd)
    if name is None:
        blocks = [len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
        raise DataError(f"the state dict is a ResNet with {blocks} blocks per stage; siamlab reads ResNet-18 "
                        "([2, 2, 2, 2]) and ResNet-50 ([3, 4, 6, 3]); export other depths as TorchScript instead.")
    w = sd["conv1.weight"]
    stem = "imagenet" if w.shape[-1] == 7 else "cifar"
    make = resnet18 if name == "resnet18" else resnet50
    return make(in_channels=int(w.shape[1]), stem=stem), int(w.shape[1])


def mlp_from_state_dict(sd: dict, source: str = "the state dict") -> nn.Sequential:
    """An MLP head from a ``nn.Sequential`` state dict: 2-D ``i.weight`` → Linear (bias if ``i.bias``),
    ``i.running_mean`` → BatchNorm1d (affine if ``i.weight``); a parameterless index between them → ReLU
    (the SimSiam / solo-learn / lightly projector: Linear-BN-ReLU-...-Linear[-BN]). Other layers (LayerNorm,
    a BN without its statistics) are refused in one sentence naming the first key and ``source``."""
    idx = sorted({int(k.split(".")[0]) for k in sd if k.split(".")[0].isdigit()})
    if not idx:
        raise DataError(f"the projector's keys ({', '.join(list(sd)[:3])} ...) are not those of an nn.Sequential MLP "
                        "(0.weight, 1.running_mean, ...).")
    layers = []
    for i in range(idx[-1] + 1):
        w, rm = sd.get(f"{i}.weight"), sd.get(f"{i}.running_mean")
        if rm is not None:
            layers.append(nn.BatchNorm1d(rm.shape[0], affine=w is not None))
        elif w is not None and w.ndim == 2:
            layers.append(nn.Linear(w.shape[1], w.shape[0], bias=f"{i}.bias" in sd))
        else:
            layers.append(nn.ReLU())
    from ..models.heads import ProjectionMLP

    net = ProjectionMLP(*layers)
    load_strict(net, sd, f"the projector weights of {source}",
                "siamlab reads projectors of Linear, BatchNorm1d and ReLU layers: pass another projector as a "
                "TorchScript file with --projector, or remove the projector's keys to diagnose the backbone alone")
    return net


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _unwrap(obj):
    """The innermost mapping of tensors: ``{"state_dict": ...}``, ``{"model": ...}`` wrappers are opened."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in ("state_dict", "model", "backbone", "module", "net") if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    return obj


def _from_torchvision(sd: dict, source: str) -> Optional[LoadedModel]:
    for prefix in _PREFIXES:
        if f"{prefix}conv1.weight" in sd and f"{prefix}layer1.0.conv1.weight" in sd:
            body = {k: v for k, v in _sub(sd, prefix).items() if k.startswith(("conv1.", "bn1.", "layer"))}
            net, cin = build_resnet(body)
            random_net = copy.deepcopy(net)
            load_strict(net, body, f"the {resnet_depth(body)} weights of {source}",
                        "export ResNets of another layout as TorchScript (torch.jit.save) instead")
            proj_prefix = next((p for p in ("projector.", prefix.replace("backbone.", "projector."), "encoder.projector.")
                                if p and any(k.startswith(p) for k in sd)), None)
            proj = mlp_from_state_dict(_sub(sd, proj_prefix), source) if proj_prefix else None
            return LoadedModel("torchvision-resnet" + (f" (prefix {prefix!r})" if prefix else ""), net, proj, cin,
                               random_backbone=random_net, random_projector=_fresh(proj))
    return None


# --- siamlab's own files --------------------------------------------------------------------------
EXPORT_FIX = "write the file again with `siamlab export RUN --format state_dict`"
CHECKPOINT_FIX = "use a checkpoint written by `siamlab train`"


def file_config(sections: dict, source: str, fix: str):
    """The RunConfig of the ``model`` / ``data`` sections a siamlab file carries, or one sentence naming the file."""
    from ..config import from_dict
    from ..errors import ConfigError

    try:
        return from_dict(sections)
    except ConfigError as err:
        raise DataError(f"{source} carries a config siamlab cannot read ({str(err).rstrip('.')}); {fix}.") from None


def _tensors(v) -> bool:
    return isinstance(v, dict) and bool(v) and all(isinstance(t, torch.Tensor) for t in v.values())


EXPORT_KEYS = {  # key -> (check, what it must be)
    "model": (lambda v: isinstance(v, dict), "the model config (a mapping)"),
    "backbone": (_tensors, "the backbone's state dict (names -> tensors)"),
    "in_shape": (lambda v: isinstance(v, (list, tuple)) and len(v) in (1, 3)
                 and all(type(d) is int and d > 0 for d in v), "the input shape, [D] or [C, H, W] of positive integers"),
    "projector": (lambda v: v is None or _tensors(v), "the projector's state dict or null"),
    "data": (lambda v: v is None or isinstance(v, dict), "the data config (a mapping) or null"),
}


def check_export(obj: dict, source: str) -> None:
    """One sentence naming the first key of a siamlab export file that is missing or mistyped (a crafted file)."""
    for key, (ok, what) in EXPORT_KEYS.items():
        if key not in obj and key in ("projector", "data"):
            continue
        if key not in obj:
            raise DataError(f"{source} is a siamlab export without {key!r} ({what}); {EXPORT_FIX}.")
        if not ok(obj[key]):
            shown = "" if isinstance(obj[key], dict) else f" {repr(obj[key])[:60]},"
            raise DataError(f"{source} is a siamlab export whose {key!r} is{shown} not {what}; {EXPORT_FIX}.")


def _from_siamlab(obj: dict, source: str) -> Optional[LoadedModel]:
    from ..models.backbones import build_backbone

    if obj.get("format") == EXPORT_FORMAT:
        check_export(obj, source)
        cfg = file_config({"model": obj["model"]}, source, EXPORT_FIX)
        in_shape = tuple(obj["in_shape"])
        make = lambda: build_backbone(cfg.model, in_shape)  # noqa: E731
        net, random_net = make(), make()
        load_strict(net, obj["backbone"], f"the backbone weights of {source}",
                    "write the file again with `siamlab export RUN --format state_dict`")
        proj = mlp_from_state_dict(obj["projector"], source) if obj.get("projector") else None
        return LoadedModel("siamlab export", net, proj, in_shape[0], obj["model"], obj.get("data") or {},
                           random_backbone=random_net, random_projector=_fresh(proj))
    if isinstance(obj.get("method"), dict) and isinstance(obj.get("config"), dict):
        cfg = file_config({k: v for k, v in obj["config"].items() if k in ("model", "data")}, source, CHECKPOINT_FIX)
        enc, random_enc = build_siamlab_encoder(cfg, obj["method"], source)
        return LoadedModel("siamlab checkpoint", enc.backbone, enc.projector, enc.in_shape[0], obj["config"]["model"],
                           obj["config"].get("data") or {}, random_enc.backbone, random_enc.projector)
    return None


def build_siamlab_encoder(cfg, method_sd: dict, source: str = "the checkpoint"):
    """(trained, random-init) siamlab Encoders for a training checkpoint's ``method`` state dict (read from
    ``source``, named in messages); each gets ``in_shape``: (D,) for vectors, else (C, S, S) with S = 32 or
    224, whichever stem the weights fit."""
    from ..models import build_encoder

    backbone_sd, proj_sd = _sub(method_sd, "encoder.backbone."), _sub(method_sd, "encoder.projector.")
    first = next((v for k, v in backbone_sd.items() if k.endswith("weight")), None)
    if not _tensors(backbone_sd) or not isinstance(first, torch.Tensor) or first.ndim < 2:
        raise DataError(f"{source} holds no encoder.backbone weights as tensors; it is not a siamlab training checkpoint "
                        f"({CHECKPOINT_FIX}).")
    shapes = [(int(first.shape[1]),)] if first.ndim == 2 else [(int(first.shape[1]), s, s) for s in (32, 224)]
    for in_shape in shapes:
        enc = build_encoder(cfg.model, in_shape)
        try:
            enc.backbone.load_state_dict(backbone_sd, strict=True)
        except RuntimeError:
            continue
        load_strict(enc.projector, proj_sd, f"the projector weights of {source}",
                    "use a checkpoint written by `siamlab train` with the config beside it")
        random_enc = build_encoder(cfg.model, in_shape)
        enc.in_shape = random_enc.in_shape = in_shape
        return enc, random_enc
    raise DataError(f"the checkpoint's backbone weights do not fit model.backbone={cfg.model.backbone!r} of its own config.")


# --- TorchScript ----------------------------------------------------------------------------------
def reinit_scripted(module) -> None:
    """Re-initialize a TorchScript module in place: norm layers to weight 1, bias 0 and fresh running
    statistics; every other weight of dimension ≥ 2 with PyTorch's default Conv/Linear init
    (Kaiming-uniform, a = √5) and its bias uniform in ±1/√fan_in."""
    with torch.no_grad():
        for _, m in module.named_modules():
            kind = getattr(m, "original_name", type(m).__name__)
            params = dict(m.named_parameters(recurse=False))
            if re.search(r"Norm", kind):
                for name, p in params.items():
                    p.fill_(1.0 if name == "weight" else 0.0)
                for name, b in m.named_buffers(recurse=False):
                    if name == "running_mean":
                        b.zero_()
                    elif name == "running_var":
                        b.fill_(1.0)
                continue
            w = params.get("weight")
            if w is not None and w.ndim >= 2:
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                fan_in = w[0].numel()
                if params.get("bias") is not None:
                    nn.init.uniform_(params["bias"], -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


def _jit_load(path: Path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript; it still loads
        return torch.jit.load(str(path), map_location="cpu")


def _from_torchscript(path: Path) -> LoadedModel:
    try:
        net = _jit_load(path)
    except Exception as err:
        raise DataError(f"{str(path)!r} looks like a TorchScript archive but does not load ({type(err).__name__}).") from None
    random_net = _jit_load(path)
    reinit_scripted(random_net)
    return LoadedModel("torchscript", net, random_backbone=random_net)


def _fresh(module: Optional[nn.Module]) -> Optional[nn.Module]:
    if module is None:
        return None
    m = copy.deepcopy(module)
    for sub in m.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    return m


def load_model(path, projector: Optional[str] = None) -> LoadedModel:
    """The networks in ``path`` (any layout of the module docstring), with an optional separate
    ``projector`` file (a Sequential MLP state dict or a TorchScript module). One-sentence DataError
    for anything else, naming the expected layouts."""
    path = Path(path)
    if path.is_dir():  # a run directory
        path = path / "checkpoints" / "last.pt"
    if path.is_file() and is_torchscript(path):
        model = _from_torchscript(path)
    else:
        obj = read_file(path)
        model = _from_siamlab(obj, repr(str(path))) if isinstance(obj, dict) else None
        if model is None:
            sd = _unwrap(obj)
            model = _from_torchvision(sd, repr(str(path))) if isinstance(sd, dict) else None
            if model is None:
                keys = list(sd)[:3] if isinstance(sd, dict) else []
                shown = ", ".join(repr(str(k)) for k in keys) or f"a {type(obj).__name__}"
                raise DataError(f"{str(path)!r} has keys ({shown} ...) that match no layout siamlab reads; expected {EXPECTED}.")
    if projector:
        ppath = Path(projector)
        if ppath.is_file() and is_torchscript(ppath):
            proj = _from_torchscript(ppath)
            model.projector, model.random_projector = proj.backbone, proj.random_backbone
        else:
            sd = _unwrap(read_file(ppath))
            sd = _sub(sd, "projector.") if any(str(k).startswith("projector.") for k in sd) else sd
            model.projector = mlp_from_state_dict(sd, repr(str(ppath)))
            model.random_projector = _fresh(model.projector)
    return model
