"""Image datasets as tar shards in the WebDataset layout: built from an image folder, read by index (SPEC §5).

Layout (``siamlab data shard ROOT OUT`` writes it: :mod:`siamlab.data.shard_writer`; other WebDataset shards
holding one image and one ``.cls`` label per sample read the same way): ``OUT/train/shard-000000.tar ...`` and
``OUT/val/shard-000000.tar ...``; sample ``<key>`` is ``<key>.<ext>`` (the image file's bytes,
unchanged), ``<key>.cls`` (the class index as text) and, in siamlab's shards, ``<key>.path`` (the source
file's path in the image folder, named in messages about the sample). ``OUT/<split>/index.json`` (wids's dataset
descriptor plus ``classes`` and each shard's ``labels``) lets a split open without reading a shard;
without it the shards are scanned (once per process). Both splits take the number of classes from the train
split (its ``classes``, else its largest label + 1); a label outside them, or a shard that is damaged or no tar,
is one sentence naming the shards. The samples keep the image folder's order (class, then file
name), so ``image_shards`` and ``image_folder`` on the same images have the same indices and labels.

Reading uses ``wids`` (the WebDataset project's indexed reader: random access into a shard through
mmap), so streamed training follows the same sample order, per-sample seeds and rank split as the
in-memory path; writing uses ``webdataset.ShardWriter``. Both come with ``pip install siamlab[shards]``.
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .dataset import optional_root
from .folder import DEFAULT_SIZE, EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, SPLIT_DIRS, split_dir
from .stream import ReadSettings, StreamDataset

INDEX = "index.json"
PATTERN = "shard-%06d.tar"
SHARDS_HOW = "set data.root to a folder holding train/*.tar and val/*.tar (build one with `siamlab data shard ROOT OUT`)"
OPEN_SHARDS = 64  # shards a process keeps open (mmapped and indexed) at once
INSTALL = "pip install 'siamlab[shards]' (webdataset and wids)"


def _wids():
    try:
        from wids.wids import IndexedTarSamples
    except ImportError:
        raise DataError(f"reading tar shards needs the wids package; {INSTALL}.") from None
    return IndexedTarSamples


def _unreadable(shard, err: Exception) -> DataError:
    return DataError(f"tar shard {str(shard)!r} cannot be read ({type(err).__name__}: it is damaged or not a tar "
                     "file); rebuild it with `siamlab data shard`, or remove it and its index.json entry.")


class ShardSamples:
    """Samples of a list of shards, addressed by a global index (shard by shard, in shard order)."""

    def __init__(self, shards: list, counts: list, index: Optional[np.ndarray] = None):
        self.shards, self.counts = [str(s) for s in shards], list(counts)
        self.starts = np.cumsum([0] + self.counts)
        self.index = np.arange(self.starts[-1]) if index is None else np.asarray(index)
        self._open: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:  # a DataLoader worker opens its own shards
        return {**self.__dict__, "_open": OrderedDict()}

    def take(self, index: np.ndarray) -> "ShardSamples":
        return ShardSamples(self.shards, self.counts, self.index[index])

    def _shard(self, k: int):
        if k not in self._open:
            if len(self._open) >= OPEN_SHARDS:
                self._open.popitem(last=False)[1].close()
            opener = _wids()
            try:
                self._open[k] = opener(path=self.shards[k])
            except Exception as err:  # wids raises struct.error, OSError, ValueError ... on what is not a tar
                raise _unreadable(self.shards[k], err) from None
        self._open.move_to_end(k)
        return self._open[k]

    def entry(self, i: int) -> tuple:
        """(shard path, wids sample dict: ``.ext`` -> BytesIO, ``__key__``) of sample ``i``."""
        g = int(self.index[i])
        k = int(np.searchsorted(self.starts, g, side="right")) - 1
        shard = self._shard(k)
        try:
            return self.shards[k], shard[g - int(self.starts[k])]
        except Exception as err:  # a shard cut short after its index was read
            raise _unreadable(self.shards[k], err) from None

    def read(self, i: int) -> tuple:
        """(image bytes, name for messages) of sample ``i``."""
        shard, sample = self.entry(i)
        ext = next((e for e in sample if e.lower() in EXTENSIONS), None)
        if ext is None:
            raise DataError(f"sample {sample['__key__']!r} of tar shard {shard!r} holds no image "
                            f"({', '.join(sorted(EXTENSIONS))}); rebuild the shard.")
        source = sample.get(".path")  # the image folder's file it was packed from (`siamlab data shard`)
        where = f" (packed from {source.getvalue().decode(errors='replace')!r})" if source is not None else ""
        return sample[ext].getvalue(), f"{shard}:{sample['__key__']}{ext}{where}"


def _scan(folder: Path, tars: list) -> dict:
    """The index of shards without one: sample counts and ``.cls`` labels read from every shard."""
    from tqdm.auto import tqdm

    shardlist, opener = [], _wids()
    for tar in tqdm(tars, desc=f"indexing {folder.name} shards", file=sys.stderr, leave=False):
        try:
            samples = opener(path=str(tar))
        except Exception as err:  # see ShardSamples._shard
            raise _unreadable(tar, err) from None
        try:
            labels = [int(samples[i][".cls"].getvalue()) for i in range(len(samples))]
        except (KeyError, ValueError):
            raise DataError(f"tar shard {str(tar)!r} has a sample without an integer .cls label; {SHARDS_HOW}.") from None
        except Exception as err:
            raise _unreadable(tar, err) from None
        finally:
            samples.close()
        shardlist.append({"url": tar.name, "nsamples": len(labels), "labels": labels})
    return {"wids_version": 1, "shardlist": shardlist}


_SCANNED: OrderedDict = OrderedDict()  # the last scans (both splits of a run), keyed by the shards' names, sizes, times
KEEP_SCANS = 4


def read_index(folder: Path) -> dict:
    """``folder``'s index.json, or a scan of its shards (made once per process while the shards stay unchanged:
    the test split reads the train split's labels too)."""
    path = folder / INDEX
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise DataError(f"{path} is not valid JSON; delete it (the shards are then scanned) or rebuild the shards.") from None
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise DataError(f"{folder} holds no .tar shards: {SHARDS_HOW}.")
    key = (str(folder.resolve()), tuple((t.name, t.stat().st_size, t.stat().st_mtime_ns) for t in tars))
    if key not in _SCANNED:
        _SCANNED[key] = _scan(folder, tars)
        while len(_SCANNED) > KEEP_SCANS:
            _SCANNED.popitem(last=False)
    return _SCANNED[key]


def _labels(folder: Path, index: dict) -> list:
    """Every label the index of ``folder`` lists, in sample order."""
    try:
        shardlist = index["shardlist"]
        labels = [c for s in shardlist for c in s.get("labels", [])]
        complete = bool(shardlist) and len(labels) == sum(s["nsamples"] for s in shardlist)
    except (KeyError, TypeError, AttributeError):
        complete = False
    if not complete or not all(type(c) is int for c in labels):
        raise DataError(f"the index of {folder} lists no shards or not every label as an integer; {SHARDS_HOW}.")
    return labels


def load_image_shards(data_cfg, split: str) -> StreamDataset:
    root = optional_root(data_cfg.root)
    folders = {s: split_dir(root, s) if root is not None and root.is_dir() else None for s in ("train", split)}
    if folders[split] is None or folders["train"] is None:
        where = root if root is not None else "data.root (not set)"
        raise DataError(f"no {'/'.join(SPLIT_DIRS[split])} shards at {where}: {SHARDS_HOW}.")
    index = read_index(folders[split])
    labels, shardlist = _labels(folders[split], index), index["shardlist"]
    # Both splits take K from the train split: its index's classes, else its largest label + 1.
    train = index if split == "train" else read_index(folders["train"])
    classes = train.get("classes") if isinstance(train, dict) else None
    num_classes = len(classes) if classes else max(_labels(folders["train"], train)) + 1
    outside = [c for c in labels if not 0 <= c < num_classes]
    if outside:
        source = f"{folders['train'] / INDEX} names" if classes else "the train shards (largest label + 1) give"
        raise DataError(f"the tar shards in {folders[split]} hold label {outside[0]}, but {source} {num_classes} classes "
                        f"(labels 0 to {num_classes - 1}); rebuild the shards with `siamlab data shard`.")
    samples = ShardSamples([folders[split] / s["url"] for s in shardlist], [s["nsamples"] for s in shardlist])
    return StreamDataset(samples, torch.tensor(labels, dtype=torch.int64), num_classes, "image_shards",
                         data_cfg.image_size or DEFAULT_SIZE, list(classes or map(str, range(num_classes))),
                         IMAGENET_MEAN, IMAGENET_STD, ReadSettings.of(data_cfg))


def shards_location(root: Optional[str]) -> tuple[bool, str]:
    path = optional_root(root)
    if path is None:
        return False, "data.root (not set)"
    ok = all((d := split_dir(path, s)) is not None and any(d.glob("*.tar")) for s in ("train", "test"))
    return ok, str(path)
