"""ImageNet-100 style image folders: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*`` (SPEC §5).

The files are listed, not decoded: :func:`load_image_folder` returns a
:class:`~siamlab.data.stream.StreamDataset`, which the registry holds in memory (every image decoded
once, its short side resized to ``data.image_size`` (default 64) and center-cropped to a square, as
uint8) when it fits, or streams from disk (``data.stream``; README "Data"). CENTER trains on ImageNet-100.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..errors import DataError
from .dataset import optional_root
from .stream import FileSamples, ReadSettings, StreamDataset

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
DEFAULT_SIZE = 64
SPLIT_DIRS = {"train": ("train",), "test": ("val", "test")}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FOLDER_HOW = "set data.root to a folder holding train/<class>/<images> and val/<class>/<images>"


def split_dir(root: Path, split: str) -> Optional[Path]:
    for name in SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    return None


def class_dirs(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def list_split(root: Optional[Path], split: str) -> tuple:
    """(files, labels, classes) of ``split`` of the image folder at ``root``, in class then file-name order."""
    if root is None or not root.is_dir():
        raise DataError(f"image folder not found at {root if root is not None else 'data.root (not set)'}: {FOLDER_HOW}.")
    train_dir, this_dir = split_dir(root, "train"), split_dir(root, split)
    if train_dir is None or this_dir is None:
        wanted = "/".join(SPLIT_DIRS[split]) if this_dir is None else "train"
        raise DataError(f"image folder {root} has no {wanted} sub-folder: {FOLDER_HOW}.")
    classes = class_dirs(train_dir)
    unknown = sorted(set(class_dirs(this_dir)) - set(classes))
    if not classes or unknown:
        detail = f"class {unknown[0]!r} of {this_dir.name} is not in train" if unknown else "train has no class folders"
        raise DataError(f"image folder {root} is not usable ({detail}): {FOLDER_HOW}.")
    files, labels = [], []
    for c, name in enumerate(classes):
        if (this_dir / name).is_dir():
            found = image_files(this_dir / name)
            files += found
            labels += [c] * len(found)
    if not files:
        raise DataError(f"image folder {this_dir} holds no images with extension {', '.join(sorted(EXTENSIONS))}: {FOLDER_HOW}.")
    return files, labels, classes


def load_image_folder(data_cfg, split: str) -> StreamDataset:
    files, labels, classes = list_split(optional_root(data_cfg.root), split)
    return StreamDataset(FileSamples(files), torch.tensor(labels, dtype=torch.int64), len(classes), "image_folder",
                         data_cfg.image_size or DEFAULT_SIZE, classes, IMAGENET_MEAN, IMAGENET_STD, ReadSettings.of(data_cfg))


def folder_location(root: Optional[str]) -> tuple[bool, str]:
    path = optional_root(root)
    if path is None:
        return False, "data.root (not set)"
    return split_dir(path, "train") is not None and split_dir(path, "test") is not None, str(path)
