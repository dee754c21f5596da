"""Where the networks are in a state dict siamlab did not write: key analysis only (keys and shapes; layouts.py
builds the networks). Each layout below was read off the real libraries (tests/fixtures/foreign_layouts.json).

Backbones, found under any prefix (``module.`` of DDP, ``_orig_mod.`` of torch.compile, ``model.`` of a
Lightning module, ``backbone.``, ``encoder.``, ``student.`` ...):

* a torchvision ResNet-18/50 (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight`` ...; ``fc.*`` is not
  read): torchvision itself, ``siamlab export --format torchvision``, solo-learn's ``backbone.*``, lightly's
  benchmarks' ``backbone.*``;
* lightly's examples' ``nn.Sequential(*resnet.children()[:-1])`` (``0.weight`` = conv1, ``1.*`` = bn1,
  ``4.*`` … ``7.*`` = layer1 … layer4), alone or as ``backbone.*`` of the whole model.

When several backbones are found (BYOL's momentum copy, a DINO teacher), the online one is read: names with
momentum / teacher / target / ema come last, then the shortest prefix. solo-learn's CIFAR stem (a 3x3 conv1
with padding 2, found by solo-learn's ``classifier.*`` beside the backbone) is reported so it is rebuilt with
that padding.

Projectors are looked for beside the backbone — under the prefix the backbone was found under, less the
backbone's own name (``module.backbone.`` → ``module.projector.``): ``projector.*`` (siamlab, solo-learn) or
``projection_head.*`` (lightly; its ``layers.`` Sequential is opened). Every other key is listed by
:func:`left_out`, so nothing is dropped unsaid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

WRAPPERS = ("module", "_orig_mod")  # DataParallel / DDP, torch.compile: a wrapper around the module below it
SECONDARY = ("momentum", "teacher", "target", "ema", "key")  # copies of the online network
HEADS = ("projector", "projection_head")
_TV_PROBE, _SEQ_PROBE = "layer1.0.conv1.weight", "4.0.conv1.weight"
_SEQ_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


@dataclass
class Backbone:
    """A backbone in a state dict: ``kind`` ("torchvision-resnet" or "resnet-children"), the ``prefix`` it was
    found under, its weights renamed to torchvision's keys (``body``), the keys read, and whether it has
    solo-learn's CIFAR stem (``padded_stem``)."""

    kind: str
    prefix: str
    body: dict
    keys: list
    padded_stem: bool = False

    @property
    def owner(self) -> str:
        """The prefix of the module holding the backbone (and its heads): ``prefix`` less wrappers and the
        backbone's own name ("module.backbone." → "module.", "backbone." → "", "model.module." → "")."""
        parts = self.prefix.split(".")[:-1]
        while parts and parts[-1] in WRAPPERS:
            parts.pop()
        if parts:
            parts.pop()
        return "".join(p + "." for p in parts)


def _prefixes(sd: dict, probe: str) -> list:
    """Every prefix P (empty or ending in ".") with ``P + probe`` a key of ``sd``."""
    return [k[: -len(probe)] for k in sd if k.endswith(probe) and (k == probe or k[: -len(probe)].endswith("."))]


def _ndim(v) -> int:
    return len(getattr(v, "shape", ()))


def _candidates(sd: dict) -> list:
    found = []
    for p in _prefixes(sd, _TV_PROBE):
        if f"{p}conv1.weight" in sd and f"{p}bn1.running_mean" in sd:
            keys = [k for k in sd if k.startswith(p) and k[len(p):].startswith(("conv1.", "bn1.", "layer"))]
            found.append(Backbone("torchvision-resnet", p, {k[len(p):]: sd[k] for k in keys}, keys))
    for p in _prefixes(sd, _SEQ_PROBE):
        if _ndim(sd.get(f"{p}0.weight")) == 4 and f"{p}1.running_mean" in sd:
            body, keys = {}, []
            for k in sd:
                rest = k[len(p):] if k.startswith(p) else None
                head, _, tail = (rest or "").partition(".")
                if rest is not None and head in _SEQ_NAMES:
                    body[f"{_SEQ_NAMES[head]}.{tail}"] = sd[k]
                    keys.append(k)
            found.append(Backbone("resnet-children", p, body, keys))
    return found


def _secondary(prefix: str) -> bool:
    return any(word in part for part in prefix.lower().split(".") for word in SECONDARY)


def find_backbone(sd: dict) -> Optional[Backbone]:
    """The online ResNet backbone of ``sd`` (see the module docstring), or None when there is none."""
    found = _candidates(sd)
    if not found:
        return None
    best = min(found, key=lambda b: (_secondary(b.prefix), len(b.prefix), b.prefix))
    w = best.body.get("conv1.weight")
    best.padded_stem = (best.kind == "torchvision-resnet" and w is not None and tuple(w.shape[-2:]) == (3, 3)
                        and f"{best.owner}classifier.weight" in sd and any(k.startswith(f"{best.owner}projector.") for k in sd))
    return best


@dataclass
class Head:
    """A projector's weights as an ``nn.Sequential`` state dict (``sd``), found under ``prefix``."""

    prefix: str
    sd: dict


def _head_under(sd: dict, prefix: str) -> Optional[Head]:
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not sub:
        return None
    if all(k.startswith("layers.") for k in sub):  # lightly's heads keep their nn.Sequential in .layers
        return Head(prefix + "layers.", {k[len("layers."):]: v for k, v in sub.items()})
    return Head(prefix, sub)


def find_head(sd: dict, owner: str) -> Optional[Head]:
    """The projector beside a backbone held by ``owner`` (:attr:`Backbone.owner`), or None."""
    for name in HEADS:
        head = _head_under(sd, f"{owner}{name}.")
        if head is not None:
            return head
    return None


def find_any_head(sd: dict) -> Head:
    """The projector in a file given for it alone (``--projector``): under the first ``projector`` /
    ``projection_head`` module at any prefix (the online one first, as for backbones), else the whole file
    (lightly's ``layers.`` opened)."""
    prefixes = set()
    for k in sd:
        parts = k.split(".")
        at = next((i for i, part in enumerate(parts[:-1]) if part in HEADS), None)
        if at is not None:
            prefixes.add("".join(p + "." for p in parts[: at + 1]))
    if prefixes:
        return _head_under(sd, min(prefixes, key=lambda p: (_secondary(p), len(p), p)))
    return _head_under(sd, "") or Head("", {})


def left_out(sd: dict, used: list, backbone: Backbone) -> list:
    """The keys of ``sd`` not in ``used``, grouped by module (``classifier.*``, ``momentum_backbone.*``,
    ``backbone.fc.*`` ...), as "name.* (N)" strings in the order they first appear."""
    used, groups = set(used), {}
    for k in sd:
        if k in used:
            continue
        if k.startswith(backbone.prefix) and backbone.prefix:
            base, rest = backbone.prefix, k[len(backbone.prefix):]
        elif k.startswith(backbone.owner):
            base, rest = backbone.owner, k[len(backbone.owner):]
        else:
            base, rest = "", k
        name = base + rest.split(".")[0] if "." in rest else k
        groups[name] = groups.get(name, 0) + 1
    return [f"{g}.* ({n})" if n > 1 or g not in sd else g for g, n in groups.items()]


def lightly_resnet_generator(sd: dict) -> bool:
    """True for lightly's own CIFAR ResNet (``ResNetGenerator``: residual blocks with ``shortcut.*``), which siamlab
    does not rebuild (its nn.Sequential of children drops the stem's ReLU)."""
    return any(".shortcut." in f".{k}" for k in sd)
