"""The in-memory dataset: a uint8 image tensor (or float vectors) plus labels.

Every dataset that fits is held whole (on the training device when ``data.on_device``), so a batch is
an index into ``x``; augmentation then runs batched on that device (SPEC §5). Image folders and tar
shards too large for memory are streamed instead (:mod:`siamlab.data.stream`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Optional

import torch

from ..errors import DataError

KINDS = ("image", "vector")
SUBSET_SEED = 0  # fixed, so that every run (whatever engine.seed) sees the same subset


@dataclass
class ArrayDataset:
    """``x``: uint8 ``[N,C,H,W]`` (kind "image") or float32 ``[N,D]`` (kind "vector"); ``y``: int64 ``[N]``.

    ``mean`` / ``std`` are per-channel normalization constants in [0, 1] units for images (empty:
    computed from ``x`` when the augmentation is built); unused for vectors, which loaders
    standardize themselves.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    kind: str
    name: str
    classes: list = field(default_factory=list)
    mean: tuple = ()
    std: tuple = ()
    skipped_files: int = 0  # unreadable files left out when it was decoded (data.on_corrupt=skip)
    streamed: ClassVar[bool] = False  # held in memory (siamlab.data.stream.StreamDataset: read from disk)

    def __post_init__(self):
        check_dataset(self)

    @property
    def in_shape(self) -> tuple:
        """(C, H, W) for images, (D,) for vectors."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: torch.Tensor) -> "ArrayDataset":
        """The samples at ``index`` (same metadata)."""
        return replace(self, x=self.x[index], y=self.y[index])

    def to(self, device) -> "ArrayDataset":
        return replace(self, x=self.x.to(device), y=self.y.to(device))


def check_dataset(ds: ArrayDataset) -> None:
    """Raise DataError when the tensors do not have the documented dtypes and shapes."""
    where = f"dataset {ds.name!r}"
    if ds.kind not in KINDS:
        raise DataError(f"{where} has kind {ds.kind!r}; a loader must set kind to 'image' or 'vector'.")
    want_dtype, want_dim = (torch.uint8, 4) if ds.kind == "image" else (torch.float32, 2)
    if ds.x.dtype != want_dtype or ds.x.dim() != want_dim:
        raise DataError(
            f"{where} holds x of dtype {ds.x.dtype} and shape {tuple(ds.x.shape)}; {ds.kind} data must be "
            f"{want_dtype} with {want_dim} dimensions."
        )
    check_labels(where, ds.y, int(ds.x.shape[0]), ds.num_classes)


def check_labels(where: str, y: torch.Tensor, n: int, num_classes: int) -> None:
    """Raise DataError unless ``y`` is int64, one label per sample (``n``), each in [0, num_classes)."""
    if y.dtype != torch.int64 or y.shape != (n,):
        raise DataError(f"{where} has labels of dtype {y.dtype} and shape {tuple(y.shape)}; they must be int64 with "
                        f"one label per sample ({n}).")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{where} has labels in [{int(y.min())}, {int(y.max())}] but num_classes={num_classes}; "
                        f"labels must lie in [0, num_classes).")


def balanced_order(y: torch.Tensor, seed: int = SUBSET_SEED) -> torch.Tensor:
    """A seeded permutation of ``range(len(y))`` that cycles through the classes.

    Samples are shuffled, then ordered by their rank within their own class (ties broken by class),
    so any prefix holds the classes as evenly as their sizes allow (a stratified subset).
    """
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    labels = y[perm]
    rank = torch.empty_like(perm)
    for c in labels.unique():
        members = (labels == c).nonzero().squeeze(1)
        rank[members] = torch.arange(len(members))
    key = rank * (int(labels.max()) + 1) + labels
    return perm[torch.argsort(key, stable=True)]


def subset(ds: ArrayDataset, n: int, seed: int = SUBSET_SEED) -> ArrayDataset:
    """A fixed, seeded, class-balanced subset of ``n`` samples (all of them when ``n`` is 0 or >= len)."""
    if n <= 0 or n >= len(ds):
        return ds
    keep, _ = balanced_order(ds.y, seed)[:n].sort()
    return ds.take(keep)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple, tuple]:
    """Per-channel mean and std of a uint8 image tensor, in [0, 1] units (float64 accumulation)."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].to("cpu", torch.float64) / 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list:
    """Vector data scaled by the statistics of ``train`` (zero mean, unit variance per feature)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-12)
    return [((t - mean) / std).float() for t in (train, *others)]


def optional_root(root: Optional[str]) -> Optional[Path]:
    """``data.root`` as a Path (``~`` expanded), or None when it is not set."""
    return None if root in (None, "") else Path(root).expanduser()
