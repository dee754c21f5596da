"""Clean (un-augmented) features of a whole dataset, for kNN, probes and NCM (SPEC §3)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

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


@torch.no_grad()
def extract_features(method, dataset, augment, batch_size: int = 512,
                     device: Optional[torch.device] = None) -> dict:
    """Run ``method.embed(augment.clean(x))`` over ``dataset.x`` in eval mode and without gradients.

    Returns every named feature of ``embed`` (``backbone``, ``projector``, ...) as a float32 CPU
    tensor ``[N, D]`` in dataset order. The train/eval flag of every submodule is restored
    afterwards, so a submodule kept in eval mode on purpose (an EMA teacher) stays so.
    """
    n = int(dataset.x.shape[0])
    if n == 0:
        raise DataError(f"dataset {getattr(dataset, 'name', '?')!r} has no samples; check data.train_subset / data.test_subset.")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is not valid for feature extraction: expected an integer >= 1.")
    device = device or module_device(method)
    modes = {m: m.training for m in method.modules()}
    method.eval()
    chunks: dict = {}
    try:
        for i in range(0, n, batch_size):
            x = dataset.x[i:i + batch_size].to(device, non_blocking=True)
            for name, feat in method.embed(augment.clean(x)).items():
                chunks.setdefault(name, []).append(feat.detach().flatten(1).float().cpu())
    finally:
        _restore_modes(modes)
    return {name: torch.cat(parts) for name, parts in chunks.items()}
