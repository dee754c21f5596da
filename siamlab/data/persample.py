"""Per-sample baseline for benchmarking the batched augmentation (SPEC §5).

:class:`PerSampleViews` is a ``torch.utils.data.Dataset`` whose ``__getitem__`` augments ONE image
with plain torch ops, the way most libraries augment inside DataLoader workers. It runs the same
preset and the same operations as :class:`~siamlab.data.augment.Augment` on a batch of one, so a
benchmark comparing the two in one run measures batching alone, not different operations.
Randomness comes from torch's global RNG, which DataLoader seeds differently in every worker.
"""
from __future__ import annotations

import copy

import torch
from torch.utils.data import Dataset

from .augment import Augment, RandomSource
from .dataset import ArrayDataset


class PerSampleViews(Dataset):
    """``dataset[i]`` -> (list of ``n_views`` float32 views of sample i, i)."""

    def __init__(self, dataset: ArrayDataset, augment: Augment, n_views: int = 2):
        self.dataset = dataset
        self.augment = copy.copy(augment)  # the caller's Augment keeps its own random source
        self.augment.rng = RandomSource(None)  # a private generator would repeat itself in every worker
        self.n_views = n_views

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x = self.dataset.x[i:i + 1]
        index = torch.tensor([i])
        views = self.augment.views(x, index, self.n_views)
        return [v[0] for v in views], i
