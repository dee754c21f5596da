"""Built-in data needing no download (SPEC §5): scikit-learn digits, CENTER §3.2 toy blobs and
moons, and class-structured synthetic images."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import ArrayDataset, balanced_order, channel_stats, standardize

SPLIT_SEEDS = {"train": 1, "test": 2}

# --- scikit-learn digits ------------------------------------------------------------------------
DIGITS_TEST_FRACTION = 0.2


def load_digits_dataset(data_cfg, split: str) -> ArrayDataset:
    """The 1797 8x8 digits (values 0..16 scaled to 0..255), a fixed stratified 80/20 train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    order = balanced_order(y)  # class-cycling seeded order: its tail is a stratified test set
    n_test = round(len(y) * DIGITS_TEST_FRACTION)
    keep, _ = (order[-n_test:] if split == "test" else order[:-n_test]).sort()
    mean, std = channel_stats(x[order[:-n_test]])
    return ArrayDataset(x[keep], y[keep], 10, "image", "digits", [str(d) for d in range(10)], mean, std)


# --- CENTER §3.2 toy data -----------------------------------------------------------------------
TOY_PER_CLASS = {"train": 500, "test": 200}  # three classes: 1500 train / 600 test samples
BLOB_CENTERS = np.array([[-4.0, -2.0], [0.0, 4.0], [4.0, -2.0]])
BLOB_STD = 1.2
MOON_NOISE = 0.1


def blob_points(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three isotropic Gaussian blobs in 2-D (scikit-learn ``make_blobs``)."""
    from sklearn.datasets import make_blobs

    return make_blobs([per_class] * 3, centers=BLOB_CENTERS, cluster_std=BLOB_STD, random_state=seed)


def moon_points(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three interleaved half-moons in 2-D: scikit-learn's two moons plus a third, upper moon shifted
    right by 2 so that the lower moon sits between two upper ones; Gaussian noise of std 0.1."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, math.pi, size=(3, per_class))
    xs = np.stack([np.cos(t[0]), 1.0 - np.cos(t[1]), 2.0 + np.cos(t[2])])
    ys = np.stack([np.sin(t[0]), 0.5 - np.sin(t[1]), np.sin(t[2])])
    points = np.stack([xs.ravel(), ys.ravel()], axis=1) + rng.normal(0.0, MOON_NOISE, size=(3 * per_class, 2))
    labels = np.repeat(np.arange(3), per_class)
    perm = rng.permutation(len(labels))
    return points[perm], labels[perm]


def toy_dataset(name: str, points_fn, split: str) -> ArrayDataset:
    """Toy 2-D data standardized with the training split's statistics (CENTER §3.2)."""
    splits = {s: points_fn(TOY_PER_CLASS[s], SPLIT_SEEDS[s]) for s in ("train", "test")}
    tensors = [torch.from_numpy(splits[s][0]) for s in ("train", "test")]
    x = dict(zip(("train", "test"), standardize(*tensors)))[split]
    y = torch.from_numpy(splits[split][1].astype(np.int64))
    return ArrayDataset(x, y, 3, "vector", name, ["0", "1", "2"])


def load_blobs(data_cfg, split: str) -> ArrayDataset:
    return toy_dataset("blobs", blob_points, split)


def load_moons(data_cfg, split: str) -> ArrayDataset:
    return toy_dataset("moons", moon_points, split)


# --- synthetic images ---------------------------------------------------------------------------
SYN_CLASSES = 10
SYN_SAMPLES = {"train": 5000, "test": 1000}
SYN_SIZE = 32
SYN_PROTO_SEED = 1234


SYN_NUISANCE = 8  # number of low-frequency nuisance patterns mixed into every image


def smooth_field(n: int, size: int, grid: int, g: torch.Generator) -> torch.Tensor:
    """Random low-frequency RGB patterns: a ``grid`` x ``grid`` Gaussian field upsampled to ``size``."""
    coarse = torch.randn(n, 3, grid, grid, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def shifted_prototypes(size: int, shift: int) -> torch.Tensor:
    """Every class prototype at every offset in [0, 2·shift]², as ``[classes, offsets, 3, size, size]``."""
    big = smooth_field(SYN_CLASSES, size + 2 * shift, 5, torch.Generator().manual_seed(SYN_PROTO_SEED))
    span = range(2 * shift + 1)
    return torch.stack([big[:, :, dy:dy + size, dx:dx + size] for dy in span for dx in span], dim=1)


def synthetic_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images: a shifted, rescaled class prototype + a random mix of fixed low-frequency
    nuisance patterns (stronger than the prototype) + pixel noise. Raw-pixel nearest-class-mean
    accuracy is ~0.45 (chance 0.1): there is class structure, but a good representation must
    discount the nuisance. Prototypes and nuisance patterns depend only on SYN_PROTO_SEED,
    so the splits share them; ``seed`` draws the labels, shifts, gains, mixtures and noise."""
    shift = max(1, size // 4)
    table = shifted_prototypes(size, shift).flatten(0, 1)  # [classes * offsets, 3, size, size]
    basis = smooth_field(SYN_NUISANCE, size, 3, torch.Generator().manual_seed(SYN_PROTO_SEED + 1)).flatten(1)
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % SYN_CLASSES)[torch.randperm(n, generator=g)]
    offset = torch.randint(0, (2 * shift + 1) ** 2, (n,), generator=g)
    gain = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=g)
    mix = torch.randn(n, SYN_NUISANCE, generator=g) * (1.2 / SYN_NUISANCE ** 0.5)
    img = torch.randn(n, 3, size, size, generator=g).mul_(0.3)
    img.add_((mix @ basis).view(n, 3, size, size)).addcmul_(gain, table[y * (2 * shift + 1) ** 2 + offset])
    x = img.mul_(0.25).add_(0.5).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return x, y


def load_synthetic(data_cfg, split: str) -> ArrayDataset:
    """Deterministic class-structured images (size ``data.image_size``, default 32)."""
    size = data_cfg.image_size or SYN_SIZE
    x, y = synthetic_images(SYN_SAMPLES[split], size, SPLIT_SEEDS[split])
    mean, std = channel_stats(x)  # the Augment built on the training split normalizes both splits
    return ArrayDataset(x, y, SYN_CLASSES, "image", "synthetic", [f"pattern{c}" for c in range(SYN_CLASSES)], mean, std)
