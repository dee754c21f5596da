"""CENTER §3.2's toy views: "samples of one class are the augmentations of one image" (the ``toy`` preset)."""
from __future__ import annotations

import copy

import torch

from ..errors import DataError


class ClassPartners:
    """For the toy preset: draws, for each sample, a random other sample of the same class."""

    def __init__(self, y: torch.Tensor):
        y = y.cpu()
        self.order = torch.argsort(y, stable=True)
        counts = torch.bincount(y)
        self.start = torch.cumsum(counts, 0) - counts
        self.count = counts
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(len(y))
        self.y = y

    def to(self, device) -> "ClassPartners":
        """The same tables on ``device``."""
        moved = copy.copy(self)
        for name in ("order", "start", "count", "position", "y"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved

    def draw(self, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Partner indices for ``index`` from uniforms ``u`` (same shape); never the sample itself."""
        label = self.y[index]
        start, count = self.start[label], self.count[label]
        pick = (u * (count - 1)).long().clamp_max(count - 2)
        pick = pick + (pick >= self.position[index] - start).long()
        return self.order[start + pick]


def check_toy_pool(dataset) -> None:
    counts = torch.bincount(dataset.y.cpu(), minlength=dataset.num_classes)
    present = counts[counts > 0]
    if len(present) and int(present.min()) < 2:
        c = int(((counts > 0) & (counts < 2)).nonzero()[0])
        raise DataError(
            f"the toy augmentation needs at least two samples per class, but class {c} of {dataset.name} has one; "
            f"use more samples (raise data.train_subset or set it to 0)."
        )
