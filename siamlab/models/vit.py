"""Vision Transformer (Dosovitskiy et al. 2021), ViT-Ti/16 and ViT-S/16 sizes, in torchvision's key layout.

The module tree is that of ``torchvision.models.VisionTransformer`` without its classifier: ``conv_proj``
(the patch embedding), ``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_N``
(``ln_1``, ``self_attention`` — torch's own ``nn.MultiheadAttention``, whose fused ``in_proj_weight`` /
``out_proj`` keys torchvision keeps —, ``ln_2``, ``mlp.0`` / ``mlp.3``) and ``encoder.ln``. ``heads`` is
dropped: the backbone returns the final class token, of size ``out_dim`` = ``hidden_dim``. So
``siamlab export --format torchvision`` adds a zero ``heads.head`` and the file loads with ``strict=True``
into ``VisionTransformer(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim)`` with
identical outputs (checked against torchvision 0.29.1 by ``scripts/check_vit_torchvision.py``; the keys and
shapes are kept in tests/fixtures/torchvision_vit_layout.json). Initialization follows torchvision too.

The image size comes from the data (any square side divisible by ``patch_size``: 28 px Fashion-MNIST with
patch 4, 7 or 14) and the channel count too (torchvision builds 3; for 1-channel images replace its
``conv_proj`` before loading, as :data:`siamlab.interop.export` says). Dropout is not used (DINO trains ViTs
without it). There is no batch norm: nothing in the backbone depends on the batch.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError, DataError

# name -> (num_layers, num_heads, hidden_dim, mlp_dim): torchvision's vit_b_16 family at DeiT's tiny / small sizes
VIT_SIZES = {"vit_tiny": (12, 3, 192, 768), "vit_small": (12, 6, 384, 1536)}
LN_EPS = 1e-6  # torchvision's norm_layer = partial(nn.LayerNorm, eps=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attention(ln_1(x)), then + mlp(ln_2(x)); GELU MLP."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=LN_EPS)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=LN_EPS)
        # torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout -> keys mlp.0 and mlp.3
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Identity(), nn.Linear(mlp_dim, hidden_dim))
        for m in (self.mlp[0], self.mlp[3]):
            nn.init.xavier_uniform_(m.weight)
            nn.init.normal_(m.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Position embedding, the blocks, the final LayerNorm (torchvision's ``encoder``)."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim)) for i in range(num_layers)))
        self.ln = nn.LayerNorm(hidden_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(x + self.pos_embedding))


class VisionTransformer(nn.Module):
    """ViT trunk: patches of side ``patch_size`` of a square ``image_size`` image, embedded and prefixed by a
    class token; returns the final class token (``out_dim`` = ``hidden_dim``)."""

    def __init__(self, image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int,
                 mlp_dim: int, in_channels: int = 3):
        super().__init__()
        self.image_size, self.patch_size, self.hidden_dim = image_size, patch_size, hidden_dim
        self.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size)
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / (in_channels * patch_size * patch_size)))
        nn.init.zeros_(self.conv_proj.bias)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        seq_length = (image_size // patch_size) ** 2 + 1
        self.encoder = Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim)
        self.out_dim = hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and x.shape[-2:] != (self.image_size, self.image_size):  # (export traces it)
            raise DataError(f"this ViT takes {self.image_size} px square images, got {x.shape[-2]}x{x.shape[-1]}; "
                            f"set data.image_size={self.image_size}.")
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # [B, patches, hidden], patches in row-major order
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.encoder(x)[:, 0]


def build_vit(name: str, in_shape: tuple, patch_size: int) -> VisionTransformer:
    """``vit_tiny`` / ``vit_small`` for square images of shape (C, S, S); ``patch_size`` must divide S."""
    c, h, w = in_shape
    if h != w:
        raise ConfigError(f"model.backbone={name} needs square images, the data's are {h}x{w}; set data.image_size to "
                          "a side divisible by model.patch_size.")
    if patch_size < 1 or h % patch_size:
        divisors = [d for d in range(2, h) if h % d == 0][:4]
        hint = f" such as {', '.join(map(str, divisors))}" if divisors else ""
        raise ConfigError(f"model.patch_size={patch_size} does not divide the {h} px images; choose a divisor of {h}{hint}, "
                          "or set data.image_size to a multiple of the patch size.")
    layers, heads, hidden, mlp = VIT_SIZES[name]
    return VisionTransformer(h, patch_size, layers, heads, hidden, mlp, in_channels=c)


def vit_input_shape(state_dict: dict) -> Optional[tuple]:
    """(C, S, S) of the images a ViT state dict in this layout was built for (from ``conv_proj`` and the
    number of position embeddings); None when ``state_dict`` is not such a ViT."""
    conv, pos = state_dict.get("conv_proj.weight"), state_dict.get("encoder.pos_embedding")
    if conv is None or pos is None or conv.ndim != 4 or pos.ndim != 3:
        return None
    side = math.isqrt(int(pos.shape[1]) - 1) * int(conv.shape[-1])
    return (int(conv.shape[1]), side, side)
