"""Explicit expectation over augmentations, EOA (ZHANG §2.2, Table 1, A.2–A.3; Chen & He 2021 §4.3).

mode="moving_average" (ZHANG Fig. 1b): no predictor; every training image x keeps a target
  η_x ← m·η_x + (1−m)·Z_b(x) in a per-sample memory (Z_b the normalized z of view b, the first value
  of η_x is Z_b itself), and view a is pulled to it: L = −Z_a·sg(η_x). Table 1: no collapse.
mode="same_batch" (A.3): N views of each image in one batch (data.views=N); the first is pulled to the
  stop-gradient mean z̄ = (1/(N−1)) Σ_{i≥2} z_i of the others: L = −Z_1·sg(z̄/‖z̄‖). Table 1: collapse.
  ``grad_through_mean=true`` lets the gradient through z̄ too (A.3: also collapses).

The memory is state: ``forward`` computes the updated rows (the loss reads them; it stays pure) and
``after_step`` writes them back, for every process's indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, DataError
from ..losses.cosine import negative_cosine
from ..losses.functional import l2n
from . import register
from .base import Forward, GradFrame, LossOut, Method, require
from .naive import encode

MODES = ("moving_average", "same_batch")


@dataclass
class EOAParams:
    mode: str = "moving_average"  # moving_average | same_batch
    momentum: float = 0.8  # m of the moving average (Chen & He 2021 §4.3)
    grad_through_mean: bool = False  # same_batch: no stop-gradient on the mean of the other views

    def validate(self):
        require(self.mode in MODES, "method.mode", self.mode, "one of " + ", ".join(MODES))
        require(0.0 <= self.momentum < 1.0, "method.momentum", self.momentum, "a number in [0, 1)")


def moving_average_rows(memory: torch.Tensor, seen: torch.Tensor, index: torch.Tensor, new: torch.Tensor,
                        m: float) -> torch.Tensor:
    """η_x ← m·η_x + (1−m)·new for the rows ``index`` (ZHANG A.2; Chen & He 2021 §4.3); an unseen
    row starts at ``new``."""
    old = memory[index]
    avg = m * old + (1.0 - m) * new
    return torch.where(seen[index].unsqueeze(1), avg, new)


@register
class ExplicitEOA(Method):
    name = "eoa"
    description = "Explicit EOA: per-sample moving-average targets (no collapse) or N views in one batch (collapse) (ZHANG Table 1)."
    reference = "ZHANG §2.2, Table 1, A.2-A.3; Chen & He 2021 §4.3"
    Params = EOAParams

    def __init__(self, encoder, params: EOAParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.register_buffer("memory", torch.zeros(0, encoder.out_dim))
        self.register_buffer("seen", torch.zeros(0, dtype=torch.bool))
        self._pending = None  # (index, rows) computed by the last training forward

    def bind_dataset(self, num_samples: int) -> None:
        """Allocate the per-sample target memory η, one row per training sample."""
        device = self.memory.device
        self.memory = torch.zeros(num_samples, self.encoder.out_dim, device=device)
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=device)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        out = Forward(z=zs, h=hs, index=index)
        if self.params.mode == "moving_average":
            rows = self._moving_average_targets(zs[1], index)
            if self.training and torch.is_grad_enabled():  # a training step: after_step stores the rows
                self._pending = (index, rows)
            out.targets = [rows]
        return out

    @torch.no_grad()
    def _moving_average_targets(self, z_b: torch.Tensor, index) -> torch.Tensor:
        self._check_index(index)
        return moving_average_rows(self.memory, self.seen, index, l2n(z_b.detach().float()), self.params.momentum)

    def _check_index(self, index) -> None:
        n = self.memory.shape[0]
        if index is None:
            raise ConfigError("method.mode='moving_average' needs the dataset index of every sample; use method.mode=same_batch or pass index to forward.")
        if n == 0:
            raise ConfigError("method eoa with mode='moving_average' has no target memory; call bind_dataset(num_samples) before training.")
        # Checked on the device: reading the indices back would stall a GPU every step. On the CPU the
        # assertion fails at once (DataError); on a GPU it stops the run at the next synchronization.
        try:
            torch._assert_async(((index >= 0) & (index < n)).all(),
                                f"a sample index is outside the eoa memory of {n} rows; bind_dataset with the training-set size.")
        except RuntimeError as err:
            raise DataError(str(err)) from None

    def loss(self, out: Forward) -> LossOut:
        if self.params.mode == "moving_average":
            return LossOut(negative_cosine(out.z[0], out.targets[0].detach()))
        return LossOut(same_batch_loss(out.z, self.params.grad_through_mean))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # moving average: −∂L/∂Z_a = η̂ / M (η̂ = η/‖η‖): basic Z_b, G_e = η̂ − Z_b; same batch: no basic part.
        basic = ("z", 1) if self.params.mode == "moving_average" else None
        return GradFrame(anchor=("z", 0), basic=basic, scale=float(out.z[0].shape[0]))

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        if self._pending is None:
            return
        from ..collectives import gather_nograd  # every process stores every process's rows

        index, rows = self._pending
        self._pending = None
        index, rows = gather_nograd(index), gather_nograd(rows)
        self.memory[index] = rows.to(self.memory.dtype)
        self.seen.index_fill_(0, index, True)


def same_batch_loss(zs: list, grad_through_mean: bool = False) -> torch.Tensor:
    """−Z_1·sg(z̄), z̄ = mean of z_2..z_N (ZHANG A.3); cosine, so z̄'s norm does not matter."""
    if len(zs) < 2:
        raise ConfigError(f"data.views={len(zs)} is not valid for method eoa with mode='same_batch': expected at least 2 (ZHANG uses 10 or 25).")
    mean = torch.stack(zs[1:]).mean(dim=0)
    return negative_cosine(zs[0], mean if grad_through_mean else mean.detach())
