"""Read a model file siamlab did not necessarily write: which layout it has, and the networks in it.

Known layouts (:data:`EXPECTED`):

* a siamlab training checkpoint (``RUN/checkpoints/last.pt``, or the run directory itself);
* a siamlab export (``siamlab export --format state_dict``: backbone, projector, model config);
* a ResNet-18/50 state dict in torchvision's keys or as lightly's ``nn.Sequential(*resnet.children()[:-1])``,
  under any prefix and beside its heads, as torchvision, lightly, solo-learn, Lightning (``.ckpt``), DDP
  and torch.compile write them (where the networks are: :mod:`siamlab.interop.foreign`); wrappers such as
  ``{"state_dict": ...}`` are opened. A projector beside the backbone is read as an MLP
  (:func:`mlp_from_state_dict`); one that cannot be read is left out in one printed sentence
  (``LoadedModel.notes``), as are the keys not read;
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
from . import foreign
from .rebuild import build_resnet, fresh, load_strict, mlp_from_state_dict, resnet_depth

EXPORT_FORMAT = "siamlab-export"
EXPECTED = ("a siamlab checkpoint or run directory, a `siamlab export --format state_dict` file, a torchvision-style "
            "ResNet-18/50 state dict (conv1.weight, layer1.0.conv1.weight, ...) or lightly's nn.Sequential of a ResNet's "
            "children (0.weight, 4.0.conv1.weight, ...), under any prefix (module., model., backbone., ...) as lightly, "
            "solo-learn, Lightning and DDP save them, or a TorchScript module (torch.jit.save)")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


@dataclass
class LoadedModel:
    """Networks read from a file: ``backbone`` (images → pooled features), optional ``projector``;
    ``layout`` names what was recognized; ``in_channels`` (None when unknown, e.g. TorchScript);
    ``model_cfg`` / ``data_cfg`` dicts when the file carries siamlab's config; ``notes``: sentences on what
    was found but not read (a projector siamlab cannot rebuild, keys of other modules)."""

    layout: str
    backbone: nn.Module
    projector: Optional[nn.Module] = None
    in_channels: Optional[int] = None
    model_cfg: dict = field(default_factory=dict)
    data_cfg: dict = field(default_factory=dict)
    random_backbone: Optional[nn.Module] = None
    random_projector: Optional[nn.Module] = None
    notes: list = field(default_factory=list)


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
        objects = _pickled_objects(path)
        if objects:
            raise DataError(f"{str(path)!r} holds pickled objects that a weights-only load refuses to run ({objects}, e.g. "
                            "a Lightning checkpoint's hyper_parameters); save its weights alone, "
                            "torch.save({'state_dict': model.state_dict()}, path), and diagnose that file.") from None
        raise DataError(f"{str(path)!r} is not a readable PyTorch file with weights only ({type(err).__name__}); "
                        f"expected {EXPECTED}.") from None


def _pickled_objects(path: Path) -> str:
    """The classes a weights-only load of ``path`` refuses, listed without running them ("" if none or unknown)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        return ""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _tensors(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _holds_tensors(obj, depth: int = 3) -> bool:
    """True for a dict with tensors in it, at most ``depth`` dicts down (not, e.g., a config under "model")."""
    return isinstance(obj, dict) and depth > 0 and any(
        isinstance(v, torch.Tensor) or _holds_tensors(v, depth - 1) for v in obj.values())


def _unwrap(obj):
    """The state dict inside ``obj``: wrappers (``{"state_dict": ...}`` of a Lightning .ckpt, ``{"model": ...}``,
    ...) are opened; a dict of per-module state dicts (``{"backbone": {...}, "projector": {...}}``) is
    flattened to ``backbone.*`` / ``projector.*`` keys."""
    for _ in range(3):
        if not isinstance(obj, dict) or any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        inner = next((obj[k] for k in _WRAPPER_KEYS if _holds_tensors(obj.get(k))), None)
        if inner is None:
            parts = {f"{name}.{k}": v for name, sub in obj.items() if _tensors(sub) for k, v in sub.items()}
            return parts or obj
        obj = inner
    return obj


def _foreign_projector(sd: dict, head, out_dim: int, source: str):
    """The MLP of ``head`` (a :class:`foreign.Head`) for a backbone of ``out_dim`` features, or a DataError."""
    proj = mlp_from_state_dict(head.sd, f"{source} under {head.prefix!r}")
    first = next(m for m in proj if isinstance(m, (nn.Linear, nn.BatchNorm1d)))
    width = first.in_features if isinstance(first, nn.Linear) else first.num_features
    if width != out_dim:
        raise DataError(f"its first layer takes {width} features where the backbone gives {out_dim}.")
    return proj


def _from_foreign(sd: dict, source: str) -> Optional[LoadedModel]:
    found = foreign.find_backbone(sd)
    if found is None:
        return None
    net, cin = build_resnet(found.body)
    if found.padded_stem:  # solo-learn's CIFAR stem: nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2)
        net.conv1 = nn.Conv2d(cin, 64, 3, 1, 2, bias=False)
    random_net = copy.deepcopy(net)
    load_strict(net, found.body, f"the {resnet_depth(found.body)} weights of {source}",
                "export ResNets of another layout as TorchScript (torch.jit.save) instead")
    layout = found.kind + (f" under {found.prefix!r}" if found.prefix else "")
    layout += " (solo-learn's CIFAR stem: 3x3 conv1, padding 2)" if found.padded_stem else ""
    head, proj, notes, used = foreign.find_head(sd, found.owner), None, [], list(found.keys)
    if head is not None:
        used += [k for k in sd if k.startswith(head.prefix)]  # read, or left out in a sentence of its own
        try:
            proj = _foreign_projector(sd, head, net.out_dim, source)
            layout += f", projector under {head.prefix!r}"
        except DataError as err:
            notes.append(f"the projector under {head.prefix!r} is left out and the backbone diagnosed alone: "
                         f"{str(err).rstrip('.')} (--projector also takes a TorchScript projector).")
    rest = foreign.left_out(sd, used, found)
    if rest:
        notes.append(f"not read (other parts of the file): {', '.join(rest)}.")
    return LoadedModel(layout, net, proj, cin, random_backbone=random_net, random_projector=fresh(proj), notes=notes)


# --- siamlab's own files --------------------------------------------------------------------------
def _from_siamlab(obj: dict, source: str) -> Optional[LoadedModel]:
    from ..config import from_dict
    from ..models.backbones import build_backbone

    if obj.get("format") == EXPORT_FORMAT:
        cfg = from_dict({"model": obj["model"]})
        in_shape = tuple(obj["in_shape"])
        make = lambda: build_backbone(cfg.model, in_shape)  # noqa: E731
        net, random_net = make(), make()
        load_strict(net, obj["backbone"], f"the backbone weights of {source}",
                    "write the file again with `siamlab export RUN --format state_dict`")
        proj = mlp_from_state_dict(obj["projector"], source) if obj.get("projector") else None
        return LoadedModel("siamlab export", net, proj, in_shape[0], obj["model"], obj.get("data") or {},
                           random_backbone=random_net, random_projector=fresh(proj))
    if isinstance(obj.get("method"), dict) and isinstance(obj.get("config"), dict):
        cfg = from_dict({k: v for k, v in obj["config"].items() if k in ("model", "data")})
        enc, random_enc = build_siamlab_encoder(cfg, obj["method"], source)
        return LoadedModel("siamlab checkpoint", enc.backbone, enc.projector, enc.in_shape[0], obj["config"]["model"],
                           obj["config"].get("data") or {}, random_enc.backbone, random_enc.projector)
    return None


def build_siamlab_encoder(cfg, method_sd: dict, source: str = "the checkpoint"):
    """(trained, random-init) siamlab Encoders for a training checkpoint's ``method`` state dict (read from
    ``source``, named in messages); each gets ``in_shape``: (D,) for vectors, a ViT's (C, S, S) from its position
    embeddings, else (C, S, S) with S = 32 or 224, whichever stem the weights fit."""
    from ..models import build_encoder
    from ..models.vit import vit_input_shape

    backbone_sd, proj_sd = _sub(method_sd, "encoder.backbone."), _sub(method_sd, "encoder.projector.")
    first = next((v for k, v in backbone_sd.items() if k.endswith("weight")), None)
    if first is None:
        raise DataError("the checkpoint holds no encoder.backbone weights; it is not a siamlab training checkpoint.")
    shapes = [(int(first.shape[1]),)] if first.ndim == 2 else [(int(first.shape[1]), s, s) for s in (32, 224)]
    shapes = [vit_input_shape(backbone_sd)] if vit_input_shape(backbone_sd) else shapes  # a ViT's side is in its weights
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


def _no_layout(path: Path, obj, sd) -> DataError:
    keys = list(sd)[:3] if isinstance(sd, dict) else []
    shown = ", ".join(repr(str(k)) for k in keys) or f"a {type(obj).__name__}"
    if isinstance(sd, dict) and foreign.lightly_resnet_generator(sd):
        return DataError(f"{str(path)!r} holds a ResNet with shortcut.* blocks (lightly's ResNetGenerator), which siamlab "
                         "does not rebuild; save that backbone with torch.jit.trace(backbone, images).save(FILE) and "
                         "diagnose the TorchScript file.")
    return DataError(f"{str(path)!r} has keys ({shown} ...) that match no layout siamlab reads; expected {EXPECTED}.")


def _read_projector(model: LoadedModel, projector: str) -> None:
    """Put the projector of the file ``projector`` (TorchScript, or an MLP state dict in any layout of
    :func:`foreign.find_any_head`) on ``model``; errors are DataErrors (the user asked for this file)."""
    ppath = Path(projector)
    if ppath.is_file() and is_torchscript(ppath):
        proj = _from_torchscript(ppath)
        model.projector, model.random_projector = proj.backbone, proj.random_backbone
        return
    sd = _unwrap(read_file(ppath))
    head = foreign.find_any_head(sd) if isinstance(sd, dict) else None
    if not head or not head.sd:
        raise DataError(f"{str(ppath)!r} holds no projector weights; pass an nn.Sequential MLP state dict or a TorchScript file.")
    model.projector = mlp_from_state_dict(head.sd, repr(str(ppath)) + (f" under {head.prefix!r}" if head.prefix else ""))
    model.random_projector = fresh(model.projector)
    model.notes = [n for n in model.notes if not n.startswith("the projector under")]


def load_model(path, projector: Optional[str] = None) -> LoadedModel:
    """The networks in ``path`` (any layout of the module docstring), with an optional separate
    ``projector`` file (a Sequential MLP state dict in any prefix, or a TorchScript module). One-sentence
    DataError for anything else, naming the expected layouts."""
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
            model = _from_foreign(sd, repr(str(path))) if isinstance(sd, dict) else None
            if model is None:
                raise _no_layout(path, obj, sd)
    if projector:
        _read_projector(model, projector)
    return model
