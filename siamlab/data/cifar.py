"""CIFAR-10 / CIFAR-100 from the standard python archive or its extracted folder (SPEC §5).

The batches are pickles; they are read with :class:`RestrictedUnpickler`, which resolves only the
three globals a pickled numpy array needs, so a tampered file cannot run code. Archives are read
member by member without extracting anything to disk.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, optional_root

DEFAULT_ROOTS = (Path("data"), Path("~/data").expanduser(), Path("/usr/share/datasets"))


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# (module, name) -> object: exactly what a pickled ndarray refers to (numpy 1 and numpy 2 spellings).
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy's array reconstruction (see SAFE_GLOBALS)."""

    source = "pickle"

    def find_class(self, module, name):
        obj = SAFE_GLOBALS.get((module, name))
        if obj is None:
            raise DataError(
                f"{self.source} refers to {module}.{name}, which a CIFAR batch never contains; the file was "
                f"tampered with or is not a CIFAR batch, so replace it with the official archive."
            )
        return obj


def safe_load(raw: bytes, source: str) -> dict:
    """Unpickle one CIFAR batch (Python 2 ``str`` data decoded as latin-1, as numpy requires)."""
    unpickler = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1")
    unpickler.source = source
    try:
        obj = unpickler.load()
    except DataError:
        raise
    except Exception as e:  # malformed pickles raise many types (UnpicklingError, EOFError, ValueError ...)
        raise DataError(
            f"{source} is not a readable pickle ({type(e).__name__}); replace it with the official archive."
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{source} holds a {type(obj).__name__}, not a CIFAR batch dictionary; replace it with the official archive."
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


@dataclass(frozen=True)
class CifarLayout:
    name: str
    title: str
    archive: str
    folder: str
    members: dict  # split -> batch file names inside the folder
    label_key: str
    meta: str
    names_key: str
    num_classes: int
    mean: tuple
    std: tuple

    @property
    def how(self) -> str:
        return (f"download {self.archive} from https://www.cs.toronto.edu/~kriz/cifar.html and set data.root to it "
                f"(or to the folder holding it or its extracted {self.folder} folder)")


CIFAR10 = CifarLayout(
    "cifar10", "CIFAR-10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
    {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "labels", "batches.meta", "label_names", 10,
    (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261),  # ZHANG A.1
)
CIFAR100 = CifarLayout(
    "cifar100", "CIFAR-100", "cifar-100-python.tar.gz", "cifar-100-python",
    {"train": ["train"], "test": ["test"]},
    "fine_labels", "meta", "fine_label_names", 100,
    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
)


def locate(layout: CifarLayout, root: Optional[Path]) -> Optional[Path]:
    """The archive or extracted folder for ``layout`` at ``root`` (or the default roots when None)."""
    for base in ([root] if root is not None else DEFAULT_ROOTS):
        for cand in (base, base / layout.folder, base / layout.archive):
            if cand.is_file() and tarfile.is_tarfile(cand):
                return cand
            if cand.is_dir() and all((cand / m).is_file() for m in layout.members["test"]):
                return cand
    return None


def read_members(source: Path, names: list) -> dict:
    """Raw bytes of the named batch files, from a folder or a tar archive (not extracted)."""
    if source.is_dir():
        return {n: (source / n).read_bytes() for n in names if (source / n).is_file()}
    found = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names and base not in found:
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"archive {str(source)!r} is damaged ({type(e).__name__}); download it again.") from None
    return found


def batch_arrays(batch: dict, layout: CifarLayout, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` (rows are 1024 red, 1024 green, 1024 blue values) and labels."""
    fix = f"replace it with the official {layout.archive}"
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source} has no uint8 'data' array of shape [N, 3072]; {fix}.")
    try:
        labels = np.asarray(batch.get(layout.label_key, []), dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes)):
        raise DataError(f"{source} has no valid {layout.label_key!r} list for its {len(data)} images; {fix}.")
    return data.reshape(-1, 3, 32, 32), labels


def class_names(raw: Optional[bytes], layout: CifarLayout, source: Path) -> list:
    if raw is None:
        return [str(c) for c in range(layout.num_classes)]
    names = safe_load(raw, f"{source}/{layout.meta}").get(layout.names_key, [])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar(layout: CifarLayout, data_cfg, split: str) -> ArrayDataset:
    root = optional_root(data_cfg.root)
    source = locate(layout, root)
    if source is None:
        where = str(root) if root is not None else " or ".join(str(r) for r in DEFAULT_ROOTS)
        raise DataError(f"{layout.title} not found in {where}: {layout.how}.")
    wanted = layout.members[split]
    raw = read_members(source, wanted + [layout.meta])
    missing = [n for n in wanted if n not in raw]
    if missing:
        raise DataError(f"{layout.title} at {source} lacks the batch {missing[0]!r}; {layout.how}.")
    parts = [batch_arrays(safe_load(raw[n], f"{source}/{n}"), layout, f"{source}/{n}") for n in wanted]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    classes = class_names(raw.get(layout.meta), layout, source)
    return ArrayDataset(x, y, layout.num_classes, "image", layout.name, classes, layout.mean, layout.std)


def load_cifar10(data_cfg, split: str) -> ArrayDataset:
    return load_cifar(CIFAR10, data_cfg, split)


def load_cifar100(data_cfg, split: str) -> ArrayDataset:
    return load_cifar(CIFAR100, data_cfg, split)
