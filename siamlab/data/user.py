"""A Python program's own map-style ``Dataset`` as an in-memory :class:`ArrayDataset` (for ``siamlab.fit``).

Every item is read once, in index order, and its image stored as uint8 ``[C, H, W]`` (C = 1 or 3), so
training then runs exactly as on a built-in dataset: batched augmentation on the device, exact resume.
An item is an image, ``(image, label, ...)`` (what torchvision datasets return) or a mapping with an
``"image"`` (or ``"img"``) and optionally a ``"label"`` key. An image is a PIL image, a uint8 tensor
``[C, H, W]`` / ``[H, W]``, or a float tensor of that shape with values in [0, 1] (``ToTensor()``'s output,
stored as round(255·x)); siamlab normalizes after its own augmentation, so a dataset must not normalize.
Labels (ints, numpy or 0-d tensor integers) are optional, but all or none. Bad items are refused in one
sentence naming the item, as is a dataset whose decoded images would take more than half the memory.

``data.name`` of such a run is :data:`USER_DATA`; the CLI cannot load it (:func:`refuse_user_data`).
"""
from __future__ import annotations

import hashlib
from numbers import Integral
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .dataset import ArrayDataset
from .stream import HOLD_SHARE, available_memory

USER_DATA = "user"


def refuse_user_data() -> ConfigError:
    return ConfigError("data.name=user is the dataset a Python program passed to siamlab.fit, which the command line "
                       "cannot load; resume or evaluate such a run from Python with siamlab.fit(backbone, dataset, "
                       "resume=RUN), or train the command line on a dataset listed by `siamlab datasets`.")


def _split(item, where: str) -> tuple:
    """(image, label or None) of one item."""
    if isinstance(item, dict):
        image = item.get("image", item.get("img"))
        if image is None:
            raise DataError(f"{where} is a mapping without an 'image' key (keys: {', '.join(map(str, item))}); "
                            "return the image under 'image' (and its label under 'label').")
        return image, item.get("label")
    if isinstance(item, (tuple, list)):
        if not item:
            raise DataError(f"{where} is empty; return an image or (image, label).")
        return item[0], item[1] if len(item) > 1 else None
    return item, None


def _label(value, where: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, (Integral, np.integer)) and not isinstance(value, bool) and int(value) >= 0:
        return int(value)
    raise DataError(f"{where} has the label {value!r}; a label must be an integer >= 0 (or absent for unlabelled data).")


def image_tensor(image, where: str) -> torch.Tensor:
    """A PIL image or an image tensor as uint8 ``[C, H, W]``; else one sentence."""
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        image = image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
        a = np.asarray(image)
        return torch.from_numpy(a.copy()).unsqueeze(0) if a.ndim == 2 else torch.from_numpy(a.copy()).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        hint = " (torch.from_numpy(a).permute(2, 0, 1) for an H x W x C array)" if isinstance(image, np.ndarray) else ""
        raise DataError(f"{where} holds a {type(image).__module__}.{type(image).__name__}; siamlab.fit takes images as torch tensors [C, H, W] "
                        f"or PIL images{hint}.")
    x = image.detach().cpu()
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise DataError(f"{where} is a tensor of shape {tuple(image.shape)}; images must be [C, H, W] with C = 1 or 3 "
                        "(or [H, W]).")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise DataError(f"{where} is a {x.dtype} tensor; images must be uint8 (0-255) or float in [0, 1].")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise DataError(f"{where} is a float image with values in [{lo:.3g}, {hi:.3g}]; siamlab normalizes after its own "
                        "augmentation, so pass images in [0, 1] (drop transforms.Normalize) or as uint8 / PIL images.")
    return (x * 255).round_().to(torch.uint8)


def _items(dataset, workers: int):
    """The items of ``dataset`` in index order (read by ``workers`` DataLoader processes when > 0)."""
    if workers <= 0:
        return (dataset[i] for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=workers, collate_fn=list)
    return (item for batch in loader for item in batch)


def read_dataset(dataset, what: str = "dataset", workers: int = 0, progress: bool = True) -> tuple:
    """(``dataset`` held in memory as an image ArrayDataset named :data:`USER_DATA`, whether it is labelled) for a
    map-style ``dataset`` (``len`` and ``[i]``). Unlabelled data get label 0 (``num_classes`` 1). ``what`` names it
    in messages."""
    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"the {what} has no len(); siamlab.fit takes a map-style Dataset (len and dataset[i]); "
                        "read an iterable one into a list first.") from None
    if n < 1:
        raise DataError(f"the {what} is empty.")
    from tqdm.auto import tqdm

    x = labels = None
    for i, item in enumerate(tqdm(_items(dataset, workers), total=n, desc=f"reading the {what}", disable=not progress,
                                  leave=False)):
        where = f"{what} item {i}"
        image, label = _split(item, where)
        img, label = image_tensor(image, where), _label(label, where)
        if x is None:
            need = n * img.numel()
            if need > HOLD_SHARE * available_memory():
                raise DataError(f"the {what}'s {n} images of shape {tuple(img.shape)} take {need / 2**30:.1f} GiB, more than "
                                f"{HOLD_SHARE:.0%} of the available memory; write them as tar shards (`siamlab data shard`) "
                                "and train with data.name=image_shards, which streams them.")
            x, labels, first = torch.empty((n, *img.shape), dtype=torch.uint8), [], (tuple(img.shape), label is not None)
        if tuple(img.shape) != first[0]:
            raise DataError(f"{where} is an image of shape {tuple(img.shape)} where item 0 is {first[0]}; give every image "
                            "one size and channel count (e.g. Resize and CenterCrop in the dataset's transform).")
        if (label is not None) != first[1]:
            raise DataError(f"{where} {'has no label' if label is None else 'has a label'} where item 0 "
                            f"{'has one' if first[1] else 'has none'}; label every item or none.")
        x[i] = img
        labels.append(label or 0)
    y = torch.tensor(labels, dtype=torch.int64)
    return ArrayDataset(x, y, int(y.max()) + 1, "image", USER_DATA), first[1]


def fingerprint(ds: ArrayDataset, labelled: bool) -> dict:
    """What identifies a dataset read by :func:`read_dataset`: sample count, image shape, labels, and a sha256
    of its images and labels (a resumed run must be given the same data)."""
    h = hashlib.sha256()
    h.update(ds.x.contiguous().numpy())
    h.update(ds.y.numpy())
    return {"samples": len(ds), "shape": list(ds.in_shape), "labelled": bool(labelled),
            "num_classes": ds.num_classes, "sha256": h.hexdigest()}
