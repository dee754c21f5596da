"""ImageNet-100 style image folders: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*`` (SPEC §5).

Every image is decoded with PIL, its short side resized to ``data.image_size`` (default 64) and
center-cropped to a square, then held in memory as uint8, so training reads no files (CENTER
trains on ImageNet-100).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, optional_root

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


def load_square(path: Path, size: int) -> np.ndarray:
    """RGB uint8 ``[size, size, 3]``: short side resized to ``size`` (bicubic), then a center crop."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when the file allows it
            img = img.convert("RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
            left, top = (nw - size) // 2, (nh - size) // 2
            return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"image {str(path)!r} cannot be decoded ({type(e).__name__}); delete or replace it.") from None


def load_image_folder(data_cfg, split: str) -> ArrayDataset:
    root = optional_root(data_cfg.root)
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
    size = data_cfg.image_size or DEFAULT_SIZE
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        arrays = list(pool.map(lambda p: load_square(p, size), files))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.int64)
    return ArrayDataset(x, y, len(classes), "image", "image_folder", classes, IMAGENET_MEAN, IMAGENET_STD)


def folder_location(root: Optional[str]) -> tuple[bool, str]:
    path = optional_root(root)
    if path is None:
        return False, "data.root (not set)"
    return split_dir(path, "train") is not None and split_dir(path, "test") is not None, str(path)
