"""Image datasets as tar shards in the WebDataset layout: built from an image folder, read by index (SPEC §5).

Layout (``siamlab data shard ROOT OUT`` writes it; other WebDataset shards holding one image and one
``.cls`` label per sample read the same way): ``OUT/train/shard-000000.tar ...`` and
``OUT/val/shard-000000.tar ...``; sample ``<key>`` is ``<key>.<ext>`` (the image file's bytes,
unchanged) and ``<key>.cls`` (the class index as text). ``OUT/<split>/index.json`` (wids's dataset
descriptor plus ``classes`` and each shard's ``labels``) lets a split open without reading a shard;
without it the shards are scanned once. The samples keep the image folder's order (class, then file
name), so ``image_shards`` and ``image_folder`` on the same images have the same indices and labels.

Reading uses ``wids`` (the WebDataset project's indexed reader: random access into a shard through
mmap), so streamed training follows the same sample order, per-sample seeds and rank split as the
in-memory path; writing uses ``webdataset.ShardWriter``. Both come with ``pip install siamlab[shards]``.
"""
from __future__ import annotations

import json
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .dataset import optional_root
from .folder import DEFAULT_SIZE, EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, SPLIT_DIRS, list_split, split_dir
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
            try:
                self._open[k] = _wids()(path=self.shards[k])
            except (OSError, ValueError, AssertionError) as err:
                raise DataError(f"tar shard {self.shards[k]!r} cannot be read ({type(err).__name__}); "
                                "rebuild it with `siamlab data shard`.") from None
        self._open.move_to_end(k)
        return self._open[k]

    def entry(self, i: int) -> tuple:
        """(shard path, wids sample dict: ``.ext`` -> BytesIO, ``__key__``) of sample ``i``."""
        g = int(self.index[i])
        k = int(np.searchsorted(self.starts, g, side="right")) - 1
        return self.shards[k], self._shard(k)[g - int(self.starts[k])]

    def read(self, i: int) -> tuple:
        """(image bytes, name for messages) of sample ``i``."""
        shard, sample = self.entry(i)
        ext = next((e for e in sample if e.lower() in EXTENSIONS), None)
        if ext is None:
            raise DataError(f"sample {sample['__key__']!r} of tar shard {shard!r} holds no image "
                            f"({', '.join(sorted(EXTENSIONS))}); rebuild the shard.")
        return sample[ext].getvalue(), f"{shard}:{sample['__key__']}{ext}"


def _scan(folder: Path, tars: list) -> dict:
    """The index of shards without one: sample counts and ``.cls`` labels read from every shard."""
    from tqdm.auto import tqdm

    shardlist = []
    for tar in tqdm(tars, desc=f"indexing {folder.name} shards", file=sys.stderr, leave=False):
        samples = _wids()(path=str(tar))
        try:
            labels = [int(samples[i][".cls"].getvalue()) for i in range(len(samples))]
        except (KeyError, ValueError):
            raise DataError(f"tar shard {str(tar)!r} has a sample without an integer .cls label; {SHARDS_HOW}.") from None
        finally:
            samples.close()
        shardlist.append({"url": tar.name, "nsamples": len(labels), "labels": labels})
    return {"wids_version": 1, "shardlist": shardlist}


def read_index(folder: Path) -> dict:
    """``folder``'s index.json, or a scan of its shards."""
    path = folder / INDEX
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise DataError(f"{path} is not valid JSON; delete it (the shards are then scanned) or rebuild the shards.") from None
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise DataError(f"{folder} holds no .tar shards: {SHARDS_HOW}.")
    return _scan(folder, tars)


def load_image_shards(data_cfg, split: str) -> StreamDataset:
    root = optional_root(data_cfg.root)
    folders = {s: split_dir(root, s) if root is not None and root.is_dir() else None for s in ("train", split)}
    if folders[split] is None or folders["train"] is None:
        where = root if root is not None else "data.root (not set)"
        raise DataError(f"no {'/'.join(SPLIT_DIRS[split])} shards at {where}: {SHARDS_HOW}.")
    index = read_index(folders[split])
    shardlist = index.get("shardlist", [])
    labels = [c for s in shardlist for c in s.get("labels", [])]
    if not shardlist or len(labels) != sum(s["nsamples"] for s in shardlist):
        raise DataError(f"the index of {folders[split]} lists no shards or not every label; {SHARDS_HOW}.")
    classes = (read_index(folders["train"]) if split != "train" else index).get("classes")
    num_classes = len(classes) if classes else max(labels) + 1
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


def write_shards(root: str, out: str, per_shard: int = 1000, progress: bool = True) -> dict:
    """Shards of the image folder at ``root`` in ``out`` (the layout above); returns {split: samples written}."""
    try:
        import webdataset
    except ImportError:
        raise DataError(f"writing tar shards needs the webdataset package; {INSTALL}.") from None
    from tqdm.auto import tqdm

    if per_shard < 1:
        raise ConfigError(f"--per-shard={per_shard!r} is not valid: expected an integer >= 1.")
    src, dst = Path(root).expanduser(), Path(out).expanduser()
    written = {}
    for split in ("train", "test"):
        files, labels, classes = list_split(src, split)
        folder = dst / split_dir(src, split).name
        if folder.is_dir() and any(folder.glob("*.tar")):
            raise DataError(f"{folder} already holds shards; choose an empty output folder.")
        folder.mkdir(parents=True, exist_ok=True)
        shards: OrderedDict = OrderedDict()
        with webdataset.ShardWriter(str(folder / PATTERN), maxcount=per_shard, maxsize=float("inf"), verbose=0) as sink:
            bar = tqdm(zip(files, labels), total=len(files), desc=f"sharding {split}", unit="img", disable=not progress)
            for i, (path, label) in enumerate(bar):
                try:
                    data = path.read_bytes()
                except OSError as err:
                    raise DataError(f"image {str(path)!r} cannot be read ({type(err).__name__}); fix or remove it.") from None
                sink.write({"__key__": f"{i:08d}", path.suffix.lower().lstrip("."): data, "cls": label})
                shards.setdefault(Path(sink.fname).name, []).append(label)
        index = {"wids_version": 1, "name": f"{src.name}-{folder.name}", "classes": classes,
                 "shardlist": [{"url": k, "nsamples": len(v), "labels": v} for k, v in shards.items()]}
        tmp = folder / f".{INDEX}.tmp"
        tmp.write_text(json.dumps(index) + "\n")
        os.replace(tmp, folder / INDEX)  # written last: a folder without it is unfinished (or not ours)
        written[folder.name] = len(files)
    return written
