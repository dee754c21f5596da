"""``build_backbone``: pick the backbone named by ``model.backbone`` for the data's input shape."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError, DataError, bad_value, unknown_name
from .resnet import resnet18, resnet50
from .small import ConvNet, MLPBackbone
from .vit import VIT_SIZES, build_vit

IMAGE_BACKBONES = ("resnet18", "resnet50", "convnet", *VIT_SIZES)
VECTOR_BACKBONES = ("mlp",)
USER_BACKBONE = "user"  # a Python program's own nn.Module, passed to siamlab.fit (siamlab/engine/user_run.py)
USER_BACKBONE_NOTE = ("model.backbone=user names the nn.Module a Python program passed to siamlab.fit; pass it again "
                      "(siamlab.fit(backbone, dataset, resume=RUN) resumes such a run), or choose one of {names}")
AUTO_CIFAR_MAX_PX = 64  # stem "auto": the cifar stem for images up to this size


def resolve_stem(stem: str, in_shape: tuple) -> str:
    """``auto`` becomes ``cifar`` for images of at most 64 px on the longer side, else ``imagenet``."""
    if stem == "auto":
        return "cifar" if max(in_shape[1:]) <= AUTO_CIFAR_MAX_PX else "imagenet"
    if stem not in ("cifar", "imagenet"):
        raise bad_value("model.stem", stem, "one of auto, cifar, imagenet")
    return stem


def check_backbone(name: str, kind: str, what: str = "") -> None:
    """``model.backbone`` fits ``kind`` ("image" / "vector") data; ``what`` names the data in the message.
    Needs no data: the run's config checks call it with the dataset's kind before anything is loaded."""
    if name == USER_BACKBONE:
        raise ConfigError(USER_BACKBONE_NOTE.format(names=", ".join(IMAGE_BACKBONES + VECTOR_BACKBONES)) + ".")
    if name not in IMAGE_BACKBONES + VECTOR_BACKBONES:
        raise unknown_name("model.backbone", name, IMAGE_BACKBONES + VECTOR_BACKBONES)
    if kind == "vector" and name not in VECTOR_BACKBONES:
        raise bad_value("model.backbone", name, f"mlp for vector data{what}")
    if kind == "image" and name not in IMAGE_BACKBONES:
        raise bad_value("model.backbone", name, f"one of {', '.join(IMAGE_BACKBONES)} for image data{what}")


def _check_kind(name: str, in_shape: tuple) -> None:
    check_backbone(name, "vector" if len(in_shape) == 1 else "image", f" of shape {tuple(in_shape)}")


def build_backbone(model_cfg, in_shape: tuple) -> nn.Module:
    """Backbone for inputs of shape (C, H, W) or (D,); it returns pooled features and has ``out_dim``.

    ResNets and ViTs keep torchvision's widths (``model.width`` applies to convnet and mlp only); a ViT's
    image size is the data's, its patch side ``model.patch_size``.
    """
    in_shape = tuple(int(s) for s in in_shape)
    if len(in_shape) not in (1, 3) or min(in_shape) < 1:
        raise DataError(f"input shape {in_shape} is not supported: expected (C, H, W) images or (D,) vectors.")
    name = model_cfg.backbone
    _check_kind(name, in_shape)
    if name == "mlp":
        return MLPBackbone(in_shape[0], model_cfg.width)
    if name in VIT_SIZES:
        return build_vit(name, in_shape, model_cfg.patch_size)
    stem = resolve_stem(model_cfg.stem, in_shape)
    if name == "convnet":
        return ConvNet(in_shape[0], model_cfg.width, stem)
    make = resnet18 if name == "resnet18" else resnet50
    return make(in_channels=in_shape[0], stem=stem, zero_init_residual=model_cfg.zero_init_residual)
