"""Clean (un-augmented) features of a whole dataset, for kNN, probes and NCM (SPEC §3).

Under torchrun (SPEC §6) :func:`extract_all_features` splits the work: each rank embeds one contiguous
part of the dataset (:func:`shard_span`) and the parts are gathered, so every rank ends with the
features of the whole dataset, in dataset order, for 1/world of the forward passes.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from .. import collectives
from ..errors import ConfigError, DataError


def module_device(module: nn.Module) -> torch.device:
    """Device of the module's first parameter or buffer (CPU for a module without any)."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _restore_modes(modes: dict) -> None:
    """Put every module back into the train/eval flag recorded in ``modes``."""
    for m, training in modes.items():
        m.training = training


def shard_span(n: int, rank: int = 0, world: int = 1) -> tuple:
    """Rows [start, stop) of part ``rank`` of ``world`` contiguous parts of ``n`` rows, in order; the sizes
    differ by at most one (the first ``n % world`` parts have one row more)."""
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


def _size(dataset) -> int:
    return int(dataset.x.shape[0]) if hasattr(dataset, "x") else len(dataset)


def image_batches(dataset, start: int, stop: int, batch_size: int):
    """Rows [start, stop) of the dataset's images in batches (``x`` in memory, else ``clean_batches``)."""
    if not hasattr(dataset, "x"):
        return dataset.clean_batches(start, stop, batch_size)
    return (dataset.x[i:min(i + batch_size, stop)] for i in range(start, stop, batch_size))


PROGRESS_REDRAW_S = 0.1  # a progress bar redraws at most this often


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "it"):
    """A tqdm bar on stderr for a long evaluation step; a no-op bar when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True,
                mininterval=PROGRESS_REDRAW_S)


@torch.no_grad()
def extract_features(method, dataset, augment, batch_size: int = 512,
                     device: Optional[torch.device] = None, rank: int = 0, world: int = 1,
                     progress: Optional[str] = None) -> dict:
    """Run ``method.embed(augment.clean(x))`` over the dataset's ``x`` (or, for a streamed set, the clean
    squares its ``clean_batches`` decodes from disk) in eval mode and without gradients.

    Returns every named feature of ``embed`` (``backbone``, ``projector``, ...) as a float32 CPU
    tensor ``[N, D]`` in dataset order; with ``world`` > 1 only the rows :func:`shard_span` gives part
    ``rank`` (empty dict for an empty part). The train/eval flag of every submodule is restored
    afterwards, so a submodule kept in eval mode on purpose (an EMA teacher) stays so.
    ``progress``: a label; when given, rank 0 shows a bar of the images embedded.
    """
    n = _size(dataset)
    if n == 0:
        raise DataError(f"dataset {getattr(dataset, 'name', '?')!r} has no samples; check data.train_subset / data.test_subset.")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is not valid for feature extraction: expected an integer >= 1.")
    device = device or module_device(method)
    start, stop = shard_span(n, rank, world)
    modes = {m: m.training for m in method.modules()}
    method.eval()
    chunks: dict = {}
    bar = progress_bar(stop - start, progress or "", progress is not None and rank == 0, unit="img")
    try:
        for x in image_batches(dataset, start, stop, batch_size):
            x = x.to(device, non_blocking=True)
            for name, feat in method.embed(augment.clean(x)).items():
                chunks.setdefault(name, []).append(feat.detach().flatten(1).float().cpu())
            bar.update(x.shape[0])
    finally:
        bar.close()
        _restore_modes(modes)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def extract_all_features(method, dataset, augment, batch_size: int = 512,
                         device: Optional[torch.device] = None, progress: Optional[str] = None) -> dict:
    """:func:`extract_features` of the whole dataset, with the work split over ranks under torch.distributed.

    Collective there (every rank must call it): rank r embeds its :func:`shard_span` part, the parts are
    padded to the longest, all-gathered as one tensor on ``device`` (the method's: CUDA under NCCL, CPU
    under gloo) and trimmed, so every rank returns the one-process result. A dataset with fewer samples
    than ranks is embedded whole on every rank. ``progress``: see :func:`extract_features`.
    """
    device = device or module_device(method)
    n, world = _size(dataset), collectives.world_size()
    if world == 1 or n < world:
        return extract_features(method, dataset, augment, batch_size, device, progress=progress)
    local = extract_features(method, dataset, augment, batch_size, device, collectives.rank(), world, progress)
    spans = [shard_span(n, r, world) for r in range(world)]
    longest = spans[0][1] - spans[0][0]
    names, widths = list(local), [f.shape[1] for f in local.values()]
    flat = torch.cat(list(local.values()), 1).to(device)
    flat = torch.cat([flat, flat.new_zeros(longest - flat.shape[0], flat.shape[1])])
    every = collectives.gather_nograd(flat).cpu()
    rows = torch.cat([every[r * longest:r * longest + b - a] for r, (a, b) in enumerate(spans)])
    return {name: f.contiguous() for name, f in zip(names, rows.split(widths, 1))}


def view_sample(n_total: int, n: int) -> torch.Tensor:
    """``min(n, n_total)`` sample indices spread evenly over ``0 .. n_total − 1`` (first and last included)."""
    n = min(int(n), int(n_total))
    return torch.linspace(0, n_total - 1, n).round().long() if n > 1 else torch.zeros(n, dtype=torch.long)


@torch.no_grad()
def embed_views(method, dataset, augment, images: int, views: int, seed: int = 0, batch_size: int = 512,
                device: Optional[torch.device] = None) -> dict:
    """``method.embed`` of ``views`` augmented views of ``images`` samples of ``dataset`` (the split the
    augmentation was built on: the toy preset's views index it), in eval mode: ``{name: [images, views, D]}``
    float32 CPU tensors, for LiDAR (:func:`siamlab.analysis.labelfree.lidar`). The samples are spread evenly
    over the dataset (:func:`view_sample`); the views come from a copy of ``augment`` with private generators
    seeded with ``seed``, so every call sees the same views and no global RNG (the training's) is drawn
    from. A streamed dataset (no ``x`` in memory) gives ``{}``: its views are cropped at decode time."""
    if not hasattr(dataset, "x") or images < 2 or views < 2:
        return {}
    device = device or module_device(method)
    idx = view_sample(dataset.x.shape[0], images)
    aug = copy.copy(augment).manual_seed(int(seed))
    modes = {m: m.training for m in method.modules()}
    method.eval()
    chunks: dict = {}
    try:
        for part in idx.split(max(1, batch_size // views)):
            x = dataset.x[part].to(device, non_blocking=True)
            per_view = [method.embed(v) for v in aug.views(x, part.to(device), views)]
            for name in per_view[0]:
                stacked = torch.stack([f[name].detach().flatten(1).float() for f in per_view], dim=1)
                chunks.setdefault(name, []).append(stacked.cpu())
    finally:
        _restore_modes(modes)
    return {name: torch.cat(parts) for name, parts in chunks.items()}
