"""Dataset registry: ``load_dataset(data_cfg, split)`` and ``dataset_status()`` (SPEC §5)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..errors import bad_value, unknown_name
from . import builtin, cifar, folder, idx, shards
from .augment import check_preset
from .dataset import optional_root, subset
from .stream import holding, materialize
from .user import USER_DATA, refuse_user_data

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable  # (data_cfg, split) -> ArrayDataset
    description: str
    how: str  # how to get it
    locate: Optional[Callable] = None  # root -> (available, where); None = built in
    from_disk: bool = False  # listed from files and held in memory only when it fits (siamlab.data.stream)
    kind: str = "image"  # "image" or "vector" (known before loading, for config checks)


def _cifar_locate(layout):
    def where(root):
        found = cifar.locate(layout, optional_root(root))
        if found is not None:
            return True, str(found)
        return False, str(root) if root else " or ".join(str(r) for r in cifar.DEFAULT_ROOTS)
    return where


_SPECS = [
    DatasetSpec("fashion_mnist", idx.load_fashion_mnist, "Fashion-MNIST, 60k/10k 28x28 grayscale, 10 classes",
                idx.FASHION_HOW, idx.fashion_location),
    DatasetSpec("digits", builtin.load_digits_dataset, "scikit-learn digits, 8x8 grayscale, 10 classes, 80/20 split",
                "built in (scikit-learn)"),
    DatasetSpec("blobs", builtin.load_blobs, "CENTER §3.2 toy: three 2-D Gaussian blobs, 1500/600 samples",
                "built in", kind="vector"),
    DatasetSpec("moons", builtin.load_moons, "CENTER §3.2 toy: three interleaved 2-D half-moons, 1500/600 samples",
                "built in", kind="vector"),
    DatasetSpec("synthetic", builtin.load_synthetic, "class-structured random images, 10 classes, 5000/1000, 32x32 RGB",
                "built in (generated from a fixed seed)"),
    DatasetSpec("cifar10", cifar.load_cifar10, "CIFAR-10, 50k/10k 32x32 RGB, 10 classes", cifar.CIFAR10.how,
                _cifar_locate(cifar.CIFAR10)),
    DatasetSpec("cifar100", cifar.load_cifar100, "CIFAR-100, 50k/10k 32x32 RGB, 100 fine classes", cifar.CIFAR100.how,
                _cifar_locate(cifar.CIFAR100)),
    DatasetSpec("image_folder", folder.load_image_folder, "ImageNet-100 style folders, resized to data.image_size (64)",
                folder.FOLDER_HOW, folder.folder_location, from_disk=True),
    DatasetSpec("image_shards", shards.load_image_shards, "WebDataset-layout tar shards (siamlab data shard), as image_folder",
                shards.SHARDS_HOW, shards.shards_location, from_disk=True),
]
DATASETS: dict = {s.name: s for s in _SPECS}


def check_data_config(data_cfg) -> str:
    """The checks of ``data.*`` that need no data: a known dataset and an augmentation preset for its kind.
    Returns the dataset's kind ("image" or "vector"), which the model checks need."""
    if data_cfg.name == USER_DATA:
        raise refuse_user_data()
    if data_cfg.name not in DATASETS:
        raise unknown_name("data.name", data_cfg.name, DATASETS)
    kind = DATASETS[data_cfg.name].kind
    if data_cfg.augment != "auto":  # auto picks a preset that fits
        check_preset(data_cfg.augment, kind, data_cfg.name)
    return kind


def load_dataset(data_cfg, split: str):
    """The ``split`` ("train" or "test") of ``data_cfg.name``, cut to ``data.train_subset`` /
    ``data.test_subset`` samples (a fixed, seeded, class-balanced subset) when those are > 0: an
    ArrayDataset, or for image_folder / image_shards a StreamDataset when it is streamed (``data.stream``)."""
    if data_cfg.name == USER_DATA:
        raise refuse_user_data()
    if data_cfg.name not in DATASETS:
        raise unknown_name("data.name", data_cfg.name, DATASETS)
    if split not in SPLITS:
        raise bad_value("split", split, "'train' or 'test'")
    ds = DATASETS[data_cfg.name].load(data_cfg, split)
    return materialize(subset(ds, data_cfg.train_subset if split == "train" else data_cfg.test_subset), data_cfg)


def dataset_status(root: Optional[str] = None, data_cfg=None) -> list:
    """One row per dataset: name, available, where (the place looked at), how (to get it), description,
    and held: whether training holds its train split in memory or streams it (with the sizes that decide).

    ``root`` is checked instead of each dataset's default location (as ``data.root`` would be);
    ``data_cfg`` (default: the config defaults) supplies image_size, train_subset, stream and a data.root
    for the datasets read from disk and for ``data.name``'s (the others keep their default location).
    """
    from ..config import DataConfig

    data_cfg = data_cfg or DataConfig()
    rows = []
    for spec in DATASETS.values():
        here = root if root is not None else (data_cfg.root if spec.from_disk or spec.name == data_cfg.name else None)
        available, where = spec.locate(here) if spec.locate else (True, "built in")
        held = ""
        if available:
            held = "memory"
            if spec.from_disk:
                cfg = replace(data_cfg, name=spec.name, root=here)
                streamed, why = holding(subset(spec.load(cfg, "train"), cfg.train_subset), cfg.stream)
                held = f"{'stream' if streamed else 'memory'} ({why})"
        rows.append({"name": spec.name, "available": available, "where": where, "how": spec.how,
                     "description": spec.description, "held": held})
    return rows
