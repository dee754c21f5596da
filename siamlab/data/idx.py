"""Fashion-MNIST from its IDX files (gzipped or not), parsed with numpy (SPEC §5).

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, that many
big-endian uint32 sizes, then the data in C order.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, optional_root

FASHION_DEFAULT = Path("/usr/share/datasets/fashion-mnist")
FASHION_HOW = (
    "install it with `apt-get install dataset-fashion-mnist` or set data.root to a folder holding the four "
    "IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz)"
)
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)  # training-set statistics in [0, 1] units
UBYTE = 0x08


def find_idx(folder: Path, stem: str) -> Optional[Path]:
    """``folder/stem.gz`` or ``folder/stem``, whichever exists."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"IDX file {str(path)!r} cannot be read ({e}); replace it with an intact copy: {FASHION_HOW}.") from None


def parse_idx(raw: bytes, path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file with ``ndim`` dimensions; DataError when magic or size is wrong."""
    fix = f"replace it with an intact copy: {FASHION_HOW}"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or raw[3] != ndim:
        head = raw[:4].hex()
        raise DataError(f"IDX file {str(path)!r} has magic number 0x{head}, expected 0x00000{UBYTE:x}{ndim:02x}; {fix}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {str(path)!r} is truncated inside its header; {fix}.")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(
            f"IDX file {str(path)!r} holds {len(raw) - header} data bytes but its header {shape} needs {size}; {fix}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(data_cfg, split: str) -> ArrayDataset:
    folder = optional_root(data_cfg.root) or FASHION_DEFAULT
    stems = FASHION_FILES[split]
    paths = [find_idx(folder, s) for s in stems]
    missing = [s for s, p in zip(stems, paths) if p is None]
    if missing:
        raise DataError(f"Fashion-MNIST not found in {folder} (missing {missing[0]}[.gz]): {FASHION_HOW}.")
    images = parse_idx(read_bytes(paths[0]), paths[0], ndim=3)
    labels = parse_idx(read_bytes(paths[1]), paths[1], ndim=1)
    if len(images) != len(labels) or (len(labels) and labels.max() >= len(FASHION_CLASSES)):
        raise DataError(
            f"Fashion-MNIST files in {folder} disagree ({len(images)} images, {len(labels)} labels, labels up to "
            f"{labels.max() if len(labels) else 'none'}); replace them with intact copies: {FASHION_HOW}."
        )
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(x, y, 10, "image", "fashion_mnist", list(FASHION_CLASSES), FASHION_MEAN, FASHION_STD)


def fashion_location(root: Optional[str]) -> tuple[bool, str]:
    folder = optional_root(root) or FASHION_DEFAULT
    ok = all(find_idx(folder, s) is not None for pair in FASHION_FILES.values() for s in pair)
    return ok, str(folder)
