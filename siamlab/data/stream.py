"""Image datasets read from disk: held in memory when they fit, streamed when they do not (SPEC §5).

``image_folder`` and ``image_shards`` list their samples (paths, or tar-shard entries) and labels
without decoding anything: a :class:`StreamDataset`. :func:`materialize` then decides, per split:

- held in memory (an :class:`~siamlab.data.dataset.ArrayDataset`, every image decoded once to the
  square of side ``data.image_size``) when the decoded split takes at most ``HOLD_SHARE`` of the
  available memory, or ``data.stream=false``;
- streamed otherwise, or with ``data.stream=true``: training decodes each step's images in DataLoader
  worker processes, cropped there (:mod:`siamlab.data.feed`); evaluation decodes clean squares in
  batches (:meth:`StreamDataset.clean_batches`).

Unreadable images (``data.on_corrupt``): ``stop`` raises one sentence naming the file; ``skip`` leaves
them out (in memory), replaces them by the next readable sample of the dataset (training) or by a
black image (evaluation, whose labels must stay aligned), and counts them.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import ClassVar, Optional

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, check_labels
from .decode import PIL_DEFAULT_MAX_PIXELS, load_square

HOLD_SHARE = 0.5  # hold a split in memory when its decoded size is at most this share of the available memory
MAX_AUTO_WORKERS = 8


def process_cores() -> int:
    """This process's share of the node's CPU cores (under torchrun: divided by LOCAL_WORLD_SIZE)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))


@dataclass(frozen=True)
class ReadSettings:
    """How samples are read: the fields of ``data`` that concern decoding, and whether the training
    process computes on the same CPU cores (``cpu_training``: set by :func:`for_device`)."""

    workers: Optional[int] = None
    on_corrupt: str = "stop"
    max_image_pixels: int = PIL_DEFAULT_MAX_PIXELS
    cpu_training: bool = False

    @classmethod
    def of(cls, data_cfg) -> "ReadSettings":
        return cls(data_cfg.workers, data_cfg.on_corrupt, data_cfg.max_image_pixels)

    def worker_count(self) -> int:
        """``data.workers``, else :func:`process_cores` (at most 8), or half of them when training runs on the
        CPU: the training process keeps the rest (:func:`training_threads`)."""
        if self.workers is not None:
            return self.workers
        cores = process_cores()
        return max(1, min(MAX_AUTO_WORKERS, cores // 2 if self.cpu_training else cores))


def training_threads(settings: ReadSettings) -> int:
    """Torch threads for a process that trains on the CPU beside its decoding workers: the cores they leave
    (never more than it has now, e.g. with OMP_NUM_THREADS set).

    More would oversubscribe the cores, and the training process's OpenMP threads then wait for each
    other at every operation (measured on 2 cores: 2.7 instead of 240 images/s, benchmarks/bench_stream.py).
    """
    return max(1, min(torch.get_num_threads(), process_cores() - settings.worker_count()))


def for_device(ds, device):
    """``ds`` told whether training runs on the CPU (a streamed set then leaves cores to the training process)."""
    if not getattr(ds, "streamed", False):
        return ds
    return replace(ds, settings=replace(ds.settings, cpu_training=torch.device(device).type == "cpu"))


class FileSamples:
    """Samples that are image files (paths held in one numpy array: no per-path Python objects to copy
    into every worker)."""

    def __init__(self, paths):
        self.paths = np.asarray([str(p) for p in paths])

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> tuple:
        """(source for the decoder, name for messages) of sample ``i``."""
        path = str(self.paths[i])
        return path, path

    def take(self, index: np.ndarray) -> "FileSamples":
        return FileSamples(self.paths[index])


@dataclass
class StreamDataset:
    """Images listed, not decoded: ``samples.read(i)``, labels ``y``; decoded at side ``size`` in RGB."""

    samples: object  # FileSamples or shards.ShardSamples
    y: torch.Tensor
    num_classes: int
    name: str
    size: int
    classes: list = field(default_factory=list)
    mean: tuple = ()
    std: tuple = ()
    settings: ReadSettings = ReadSettings()
    kind: ClassVar[str] = "image"
    streamed: ClassVar[bool] = True

    def __post_init__(self):
        check_labels(f"dataset {self.name!r}", self.y, len(self.samples), self.num_classes)  # as an ArrayDataset's

    @property
    def in_shape(self) -> tuple:
        return (3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: torch.Tensor) -> "StreamDataset":
        return replace(self, samples=self.samples.take(index.numpy()), y=self.y[index])

    def decoded_bytes(self) -> int:
        return len(self) * 3 * self.size * self.size

    # --- clean squares ----------------------------------------------------------------------------
    def clean(self, i: int) -> tuple:
        """(uint8 ``[size, size, 3]`` clean square of sample i, or None when it is unreadable and skipped;
        the error sentence under ``on_corrupt=stop``, else None)."""
        source, name = self.samples.read(i)
        try:
            return load_square(source, self.size, name, self.settings.max_image_pixels), None
        except DataError as err:
            return None, (str(err) if self.settings.on_corrupt == "stop" else None)

    def decode_all(self) -> ArrayDataset:
        """Every image decoded (in worker processes) into an in-memory ArrayDataset; skipped files left out."""
        arrays, keep, skipped = [], [], 0
        for start, (batch, errors) in _clean_loader(self, 0, len(self), 256):
            for k, (img, err) in enumerate(zip(batch, errors)):
                if err:
                    raise DataError(err)
                if img is None:
                    skipped += 1
                    continue
                arrays.append(img)
                keep.append(start + k)
        if skipped:
            print(f"siamlab: {skipped} unreadable image(s) of {self.name} left out (data.on_corrupt=skip).", file=sys.stderr)
        if not arrays:
            raise DataError(f"no image of {self.name} could be decoded; check data.root.")
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return ArrayDataset(x, self.y[keep], self.num_classes, "image", self.name, self.classes, self.mean, self.std,
                            skipped_files=skipped)

    def clean_batches(self, start: int, stop: int, batch_size: int):
        """uint8 ``[b, 3, size, size]`` clean squares of samples [start, stop), in order (unreadable ones
        black under ``on_corrupt=skip``)."""
        skipped = 0
        for _, (batch, errors) in _clean_loader(self, start, stop, batch_size):
            err = next((e for e in errors if e), None)
            if err:
                raise DataError(err)
            skipped += sum(img is None for img in batch)
            black = np.zeros((self.size, self.size, 3), np.uint8)
            x = np.stack([black if img is None else img for img in batch])
            yield torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        if skipped:
            print(f"siamlab: {skipped} unreadable image(s) of {self.name} evaluated as black images "
                  "(data.on_corrupt=skip).", file=sys.stderr)


class _CleanSet(torch.utils.data.Dataset):
    def __init__(self, ds: StreamDataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple:
        return self.ds.clean(i)


def _columns(items: list) -> tuple:
    return tuple(zip(*items))


def _clean_loader(ds: StreamDataset, start: int, stop: int, batch_size: int):
    """(first index, (images, errors)) per batch of [start, stop), decoded by ``data.workers`` processes."""
    batches = [list(range(a, min(a + batch_size, stop))) for a in range(start, stop, batch_size)]
    workers = min(ds.settings.worker_count(), len(batches))
    loader = torch.utils.data.DataLoader(_CleanSet(ds), batch_sampler=batches, num_workers=workers,
                                         collate_fn=_columns, generator=torch.Generator())  # not torch's global RNG
    for first, batch in zip((b[0] for b in batches), loader):
        yield first, batch


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable of /proc/meminfo; else the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def holding(ds, stream: Optional[bool] = None) -> tuple:
    """(streamed?, why) for a dataset: only a StreamDataset can be streamed; ``stream`` as ``data.stream``."""
    if not getattr(ds, "streamed", False):
        return False, "in memory"
    need, free = ds.decoded_bytes(), available_memory()
    size = f"{need / 2**30:.2f} GiB decoded"
    if stream is not None:
        return stream, f"{size}; data.stream={str(stream).lower()}"
    fits = need <= HOLD_SHARE * free
    return not fits, f"{size} {'<=' if fits else '>'} {HOLD_SHARE:.0%} of {free / 2**30:.1f} GiB available"


def materialize(ds, data_cfg):
    """``ds`` held in memory or kept streamed, as :func:`holding` decides (other datasets as they are)."""
    streamed, _ = holding(ds, data_cfg.stream)
    if getattr(ds, "streamed", False) and not streamed:
        return ds.decode_all()
    return ds
