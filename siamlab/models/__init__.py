"""Backbones, projector and predictor heads, and the Encoder (backbone + projector) that methods wrap."""
from __future__ import annotations

import hashlib
from typing import Optional

import torch
from torch import nn

from .heads import PREDICTORS, build_predictor, projection_mlp


class Encoder(nn.Module):
    """f = projector ∘ backbone. ``forward`` returns (h, z): backbone features and projector output."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, out_dim: int):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.out_dim = out_dim  # dimension of z

    def forward(self, x):
        h = self.backbone(x)
        return h, self.projector(h)


def part_seed(seed: int, part: str) -> int:
    """The seed of one part of a run (``backbone``, ``projector``, ``heads``, ...): a function of the run's seed
    and the part's name only, so two runs with the same seed draw the same initial weights for every part
    they build alike, whatever the other parts consume (ISSUE 19.1: arms paired by seed)."""
    digest = hashlib.sha256(f"siamlab/{int(seed)}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch.manual_seed takes up to 2**63 - 1


def seed_part(seed: Optional[int], part: str) -> None:
    """Seed torch's global RNG for ``part`` (nothing when ``seed`` is None: the caller's RNG state is used)."""
    if seed is not None:
        torch.manual_seed(part_seed(seed, part))


def build_encoder(model_cfg, in_shape: tuple, seed: Optional[int] = None) -> Encoder:
    """Backbone chosen by ``model_cfg.backbone`` for inputs of shape ``in_shape`` (C, H, W) or (D,),
    followed by the SimSiam projector (ZHANG A.1) of ``model_cfg.proj_layers`` layers. With ``seed``, each
    part is initialized from its own :func:`part_seed`: the same seed gives the same backbone for every
    method, and the same projector wherever its layers have the same shapes."""
    from .backbones import build_backbone

    seed_part(seed, "backbone")
    backbone = build_backbone(model_cfg, in_shape)
    seed_part(seed, "projector")
    projector = projection_mlp(
        backbone.out_dim, model_cfg.proj_hidden, model_cfg.proj_out, model_cfg.proj_layers, final_bn=model_cfg.proj_final_bn
    )
    return Encoder(backbone, projector, model_cfg.proj_out)


__all__ = ["Encoder", "build_encoder", "part_seed", "seed_part", "build_predictor", "projection_mlp", "PREDICTORS"]
