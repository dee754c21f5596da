"""Linear probes on frozen features (SPEC §3): an online probe trained alongside the encoder and an
offline probe trained after it.

Both see *detached* features, so they measure the representation without shaping it. The online
probe follows the usual SSL practice (e.g. solo-learn, MoCo v3): a linear layer on
non-affine-BatchNorm-ed features with its own SGD optimizer, one step per training batch. The
offline probe standardizes the features with the training split's mean and std (so one learning
rate suits any feature scale) and trains a zero-initialized linear layer with SGD (momentum 0.9)
and a per-step cosine learning-rate schedule; zero init and a seeded shuffle make it
deterministic. The problem is convex, so the result depends little on these choices.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .knn import check_features


def _check_positive(name: str, value, allowed: str = "a number > 0") -> None:
    if not value > 0:
        raise ConfigError(f"{name}={value!r} is not valid: expected {allowed}.")


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Percent of rows whose label is among the ``k`` largest logits, as a 0-dim tensor (no host sync)."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return 100.0 * (top == labels[:, None]).any(dim=1).double().mean()


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percent of rows whose label is among the ``k`` largest logits."""
    return float(topk_hits(logits, labels, k))


class OnlineProbe(nn.Module):
    """Linear classifier trained on detached features during SSL training; never touches the encoder.

    Keep it outside the method's parameters (it has its own optimizer): ``step`` detaches its input,
    so no gradient reaches the encoder, and the method's optimizer must not step it either.
    """

    def __init__(self, in_dim: int, num_classes: int, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 0.0, batchnorm: bool = True):
        super().__init__()
        _check_positive("eval.probe_lr", lr)
        self.norm = nn.BatchNorm1d(in_dim, affine=False) if batchnorm else nn.Identity()
        self.fc = nn.Linear(in_dim, num_classes)
        self.optimizer = torch.optim.SGD(self.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(features))

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> dict:
        """One SGD step on ``features.detach()``; returns the batch's loss and accuracy (percent) before the step,
        as 0-dim tensors, so that the training loop never waits for the device here."""
        self.train()
        with torch.enable_grad(), torch.autocast(features.device.type, enabled=False):
            logits = self(features.detach().float())
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "acc": topk_hits(logits.detach(), labels)}

    @torch.no_grad()
    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Top-1 accuracy (percent) in eval mode (BatchNorm running statistics)."""
        was_training = self.training
        self.eval()
        try:
            return topk_accuracy(self(features.float()), labels)
        finally:
            self.train(was_training)


def standardize(train_f: torch.Tensor, test_f: torch.Tensor) -> tuple:
    """Both splits shifted and scaled by the train split's per-dimension mean and std (std 0 -> 1)."""
    mean = train_f.mean(dim=0)
    std = train_f.std(dim=0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return (train_f - mean) / std, (test_f - mean) / std


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine decay from ``base_lr`` at step 0 towards 0 at ``total``."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total))


def fit_linear(x, y, num_classes, epochs, lr, batch_size, wd, seed, progress: Optional[str] = None) -> nn.Linear:
    """Zero-initialized linear layer trained by SGD (momentum 0.9) with a per-step cosine schedule;
    ``progress``: a label, shown with a bar of the epochs and the last batch's loss."""
    from .features import progress_bar

    fc = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(fc.weight)
    nn.init.zeros_(fc.bias)
    opt = torch.optim.SGD(fc.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    total, step = epochs * steps_per_epoch, 0
    with progress_bar(epochs, progress or "", progress is not None, unit="epoch") as bar:
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=gen).to(x.device)
            for i in range(0, x.shape[0], batch_size):
                idx = order[i:i + batch_size]
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(lr, step, total)
                loss = F.cross_entropy(fc(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
            if not bar.disable:  # reading the loss waits for the device: only when it is shown
                bar.set_postfix(loss=f"{loss.detach().item():.4f}")
            bar.update(1)
    return fc


def linear_probe(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    wd: float = 0.0,
    seed: int = 0,
    device: Optional[torch.device] = None,
    progress: Optional[str] = None,
) -> dict:
    """Offline linear probe on frozen, standardized features (see module docstring); ``progress``: a
    label, shown with a bar of the epochs.

    Returns test accuracies ``top1`` and ``top5`` (percent; top5 counts the min(5, K) largest
    logits), ``train_top1`` and the final full-batch training cross-entropy ``train_loss``.
    """
    check_features(train_f, train_y, test_f, test_y, num_classes)
    _check_positive("epochs", epochs, "an integer >= 1")
    _check_positive("lr", lr)
    _check_positive("batch_size", batch_size, "an integer >= 1")
    if wd < 0:
        raise ConfigError(f"wd={wd!r} is not valid: expected a number >= 0.")
    device = device or train_f.device
    x_train, x_test = standardize(train_f.to(device, torch.float32), test_f.to(device, torch.float32))
    y_train, y_test = train_y.to(device, torch.int64), test_y.to(device, torch.int64)
    with torch.enable_grad():
        fc = fit_linear(x_train, y_train, num_classes, epochs, lr, batch_size, wd, seed, progress)
    with torch.no_grad():
        train_logits, test_logits = fc(x_train), fc(x_test)
        return {
            "top1": topk_accuracy(test_logits, y_test, 1),
            "top5": topk_accuracy(test_logits, y_test, 5),
            "train_top1": topk_accuracy(train_logits, y_train, 1),
            "train_loss": float(F.cross_entropy(train_logits, y_train)),
        }
