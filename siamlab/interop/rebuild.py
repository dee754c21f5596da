"""Networks rebuilt from state dicts: a ResNet-18/50 from torchvision's keys, an MLP head from an
``nn.Sequential``'s keys, a random-init copy of either; :func:`load_strict` words a misfit in one sentence."""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from ..errors import DataError


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


def fresh(module: Optional[nn.Module]) -> Optional[nn.Module]:
    if module is None:
        return None
    m = copy.deepcopy(module)
    for sub in m.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    return m
