"""Weighted k-nearest-neighbour classifier on frozen features (SPEC §3).

The classifier of Wu et al. 2018 as used by DINO (Caron et al. 2021) and GEN Table 1 / Figs. 3–4:
features are l2-normalized, each test sample takes its k most cosine-similar training samples, a
neighbour with similarity s votes for its class with weight exp(s / T), and the class with the
largest summed vote wins.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import ConfigError, DataError
from ..losses.functional import l2n

_SIM_BUDGET = 1 << 24  # entries of the (test chunk x train) similarity matrix held at once


def check_features(train_f, train_y, test_f, test_y, num_classes: int) -> None:
    """Raise DataError when the features and labels of a train/test pair do not fit together."""
    if train_f.ndim != 2 or test_f.ndim != 2 or train_f.shape[1] != test_f.shape[1]:
        raise DataError(
            f"features must be [N, D] with the same D for train and test, got {tuple(train_f.shape)} "
            f"and {tuple(test_f.shape)}; pass the outputs of extract_features for one feature name."
        )
    for split, f, y in (("train", train_f, train_y), ("test", test_f, test_y)):
        if f.shape[0] == 0 or y.shape != (f.shape[0],):
            raise DataError(
                f"{split} labels have shape {tuple(y.shape)} for {f.shape[0]} {split} features; "
                "pass one label per sample and at least one sample."
            )
        if int(y.min()) < 0 or int(y.max()) >= num_classes:
            raise DataError(
                f"{split} labels span [{int(y.min())}, {int(y.max())}], outside [0, {num_classes - 1}] "
                f"for num_classes={num_classes}; pass the dataset's num_classes."
            )


def knn_predict(
    train_n: torch.Tensor, train_y: torch.Tensor, test_n: torch.Tensor, num_classes: int, k: int, t: float
) -> torch.Tensor:
    """Predicted classes of l2-normalized ``test_n`` by the exp(s/T)-weighted vote of the top-k neighbours."""
    sim = test_n @ train_n.T  # [B, N] cosine similarities
    top_sim, top_idx = sim.topk(k, dim=1)
    votes = torch.zeros(test_n.shape[0], num_classes, dtype=sim.dtype, device=sim.device)
    votes.scatter_add_(1, train_y[top_idx], (top_sim / t).exp())
    return votes.argmax(dim=1)


@torch.no_grad()
def knn_accuracy(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    k: int = 200,
    t: float = 0.1,
    device: Optional[torch.device] = None,
) -> float:
    """Top-1 accuracy (percent) of the weighted kNN classifier (Wu et al. 2018; DINO eval_knn).

    ``k`` is clipped to the number of training samples. Test samples are processed in chunks so
    that the similarity matrix never exceeds ~16M entries. ``device`` (default: the features'
    device) is where the similarities are computed.
    """
    if k < 1:
        raise ConfigError(f"eval.knn_k={k!r} is not valid: expected an integer >= 1.")
    if not t > 0:
        raise ConfigError(f"eval.knn_t={t!r} is not valid: expected a number > 0.")
    check_features(train_f, train_y, test_f, test_y, num_classes)
    device = device or train_f.device
    train_n = l2n(train_f.to(device, torch.float32))
    train_y = train_y.to(device, torch.int64)
    k = min(k, train_n.shape[0])
    chunk = max(1, _SIM_BUDGET // train_n.shape[0])
    correct = 0
    for i in range(0, test_f.shape[0], chunk):
        test_n = l2n(test_f[i:i + chunk].to(device, torch.float32))
        pred = knn_predict(train_n, train_y, test_n, num_classes, k, t)
        correct += int((pred == test_y[i:i + chunk].to(device)).sum())
    return 100.0 * correct / test_f.shape[0]
