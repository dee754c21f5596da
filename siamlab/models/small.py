"""Small backbones for CPU runs: a 4-block ConvNet for images and an MLP for vector data.

Not from the papers (which use ResNet-18, ZHANG A.1); they keep the same interface (pooled
features with ``out_dim``) so every experiment can run at toy scale.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import bad_value


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """Four conv-BN-ReLU blocks of widths w, 2w, 4w, 8w with 2x2 max-pooling after the first three,
    then global average pooling; ``out_dim = 8w``.

    stem "cifar": the first conv is 3x3 stride 1 (28-64 px inputs: 28 -> 14 -> 7 -> 4 spatial);
    stem "imagenet": the first conv is 7x7 stride 2 followed by a 3x3/2 max-pool (large images).
    Pools use ``ceil_mode`` so any input size >= 1 px works.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, stem: str = "cifar"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise bad_value("model.stem", stem, "cifar or imagenet")
        w = width
        first = conv_bn_relu(in_channels, w) if stem == "cifar" else nn.Sequential(
            conv_bn_relu(in_channels, w, kernel=7, stride=2), nn.MaxPool2d(3, 2, 1, ceil_mode=True))
        pool = lambda: nn.MaxPool2d(2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            first, pool(),
            conv_bn_relu(w, 2 * w), pool(),
            conv_bn_relu(2 * w, 4 * w), pool(),
            conv_bn_relu(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        )
        self.out_dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class MLPBackbone(nn.Module):
    """Linear-BN-ReLU x 2 for vector data, hidden size ``width``; ``out_dim = width``."""

    def __init__(self, in_dim: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
        )
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
