"""Training batches of a streamed dataset, decoded and cropped in DataLoader worker processes (SPEC §5).

Each rank reads only its own part of each global batch (:func:`~siamlab.data.order.local_span` of the
epoch order, the same order as the in-memory path), from the step where the epoch (or a resumed run)
stands. A worker decodes a sample and applies RandomResizedCrop for every view at once
(:func:`~siamlab.data.decode.random_crops`, seeded by (seed, epoch, sample index)), so it returns small
uint8 crops; flips, colour, blur and solarization run batched on the training device
(:meth:`~siamlab.data.augment.Augment.views_of_crops`). The crops of a step are therefore a pure
function of (seed, epoch, step, rank, world): a resumed run continues with the same crops, however many
workers decode them. Presets without crops (identity, noise) get the clean square instead.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .decode import load_square, random_crops, sample_generator
from .order import local_span


class CropSet(torch.utils.data.Dataset):
    """``crops[i]`` -> (uint8 ``[V, S, S, 3]`` crops, index read, files skipped, error sentence or None).

    An unreadable sample under ``on_corrupt=skip`` is replaced by the next readable one in index order
    (with its own index, so its label goes with it); under ``stop`` the error sentence comes back to
    the training process, which raises it (a worker's exception would arrive wrapped in a traceback).
    """

    def __init__(self, ds, recipes: tuple, n_views: int, seed: int, epoch: int):
        self.ds, self.recipes, self.n_views, self.seed, self.epoch = ds, tuple(recipes), n_views, seed, epoch

    def __len__(self) -> int:
        return len(self.ds)

    def decode(self, j: int) -> np.ndarray:
        ds = self.ds
        source, name = ds.samples.read(j)
        if not self.recipes:
            return load_square(source, ds.size, name, ds.settings.max_image_pixels)[None]
        g = sample_generator(self.seed, self.epoch, j)
        return random_crops(source, ds.size, self.recipes, self.n_views, g, name, ds.settings.max_image_pixels)

    def __getitem__(self, i: int) -> tuple:
        n = len(self.ds)
        for k in range(n):
            j = (i + k) % n
            try:
                return self.decode(j), j, k, None
            except DataError as err:
                if self.ds.settings.on_corrupt == "stop":
                    return None, j, k, str(err)
        return None, i, n, f"no image of {self.ds.name} could be decoded; check data.root."


def collate(items: list) -> tuple:
    crops, index, skipped, errors = zip(*items)
    error = next((e for e in errors if e), None)
    if error:
        return None, None, sum(skipped), error
    x = torch.from_numpy(np.stack(crops)).permute(0, 1, 4, 2, 3).contiguous()  # [B, V, 3, S, S]
    return x, torch.tensor(index, dtype=torch.int64), sum(skipped), None


class StreamFeed:
    """The training batches of a streamed dataset, epoch by epoch; ``skipped`` counts replaced files."""

    def __init__(self, ds, recipes: tuple, n_views: int, seed: int, device: torch.device):
        self.ds, self.recipes, self.n_views, self.seed, self.device = ds, recipes, n_views, seed, device
        self.skipped = 0

    def take_skipped(self) -> int:
        """Files skipped since the last call."""
        n, self.skipped = self.skipped, 0
        return n

    def epoch(self, epoch: int, order: torch.Tensor, first_step: int, steps: int, global_batch: int,
              rank: int = 0, world: int = 1):
        """(index, index on the device, crops) of this rank for steps [first_step, steps); the crops stay in
        (pinned) host memory: the trainer copies them where it makes the views (its augmentation stream)."""
        batches = [order[slice(*local_span(s, global_batch, rank, world))].tolist() for s in range(first_step, steps)]
        workers = min(self.ds.settings.worker_count(), len(batches))
        cuda = self.device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            CropSet(self.ds, self.recipes, self.n_views, self.seed, epoch), batch_sampler=batches,
            num_workers=workers, collate_fn=collate, pin_memory=cuda, prefetch_factor=4 if workers else None,
            generator=torch.Generator())  # its own: creating a loader must not draw from torch's global RNG
        for crops, index, skipped, error in loader:
            if error:
                raise DataError(error)
            self.skipped += skipped
            yield index, index.to(self.device, non_blocking=cuda), crops
