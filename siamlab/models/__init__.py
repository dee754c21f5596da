"""Backbones, projector and predictor heads, and the Encoder (backbone + projector) that methods wrap."""
from __future__ import annotations

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


def build_encoder(model_cfg, in_shape: tuple) -> Encoder:
    """Backbone chosen by ``model_cfg.backbone`` for inputs of shape ``in_shape`` (C, H, W) or (D,),
    followed by the SimSiam projector (ZHANG A.1) of ``model_cfg.proj_layers`` layers."""
    from .backbones import build_backbone

    backbone = build_backbone(model_cfg, in_shape)
    projector = projection_mlp(
        backbone.out_dim, model_cfg.proj_hidden, model_cfg.proj_out, model_cfg.proj_layers, final_bn=model_cfg.proj_final_bn
    )
    return Encoder(backbone, projector, model_cfg.proj_out)


__all__ = ["Encoder", "build_encoder", "build_predictor", "projection_mlp", "PREDICTORS"]
