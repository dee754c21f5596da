"""W-MSE (Ermolov et al. 2021): whiten each view's embeddings over (sub-)batches, then MSE between positives."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import bad_value
from ..losses.wmse import WHITENINGS, check_sub_batch, wmse_loss
from . import register
from .base import Forward, LossOut, Method, StepCounter, require


@dataclass
class WMSEParams:
    w_size: int = 128  # whitening sub-batch size (paper / code: 128 on CIFAR, 256 on STL-10); 0 = whole batch
    w_iter: int = 1  # number of random sub-batch splits per step
    w_eps: float = 0.0  # covariance shrinkage (1 − eps) Σ + eps I (official default 0)
    whitening: str = "cholesky"  # cholesky (paper) | zca
    normalize: bool = True  # l2-normalize the whitened vectors before the MSE (paper default)

    def validate(self):
        require(self.w_size >= 0, "method.w_size", self.w_size, "an integer >= 0 (0 = the whole batch)")
        require(self.w_iter >= 1, "method.w_iter", self.w_iter, "an integer >= 1")
        require(0 <= self.w_eps < 1, "method.w_eps", self.w_eps, "a number in [0, 1)")
        require(self.whitening in WHITENINGS, "method.whitening", self.whitening, "cholesky or zca")

    def check_run(self, cfg) -> None:
        """Checks against the rest of the run config, made before anything is loaded: the sub-batch divides
        the global batch and is larger than the embedding dimension (else whitening is singular)."""
        check_sub_batch(cfg.optim.batch_size, self.w_size, cfg.model.proj_out, self.w_eps)


@register
class WMSE(Method):
    """All pairs of views; whitening over the global batch split into sub-batches of ``w_size``.

    The sub-batch permutation is drawn from a generator seeded by the step counter (stored in
    ``Forward.extra["w_seed"]``): the loss stays a pure function of the record, and every rank draws
    the same split. Gradient frame: the default (no basic part).
    """

    name = "wmse"
    description = "W-MSE: Cholesky whitening of the batch, then normalized MSE between positive pairs."
    reference = "Ermolov et al. 2021 §3"
    Params = WMSEParams

    def __init__(self, encoder, params: WMSEParams, model_cfg=None):
        super().__init__(encoder, params, model_cfg)
        if params.w_size and params.w_size <= encoder.out_dim and not params.w_eps:
            raise bad_value("method.w_size", params.w_size, f"a whitening sub-batch larger than the embedding dimension "
                            f"{encoder.out_dim} (W-MSE uses 128 for 64-d embeddings: set model.proj_out=64, raise "
                            "method.w_size, or set method.w_eps > 0)")
        self.steps_done = StepCounter()

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index, extra={"w_seed": int(self.steps_done)})

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        loss = wmse_loss(out.z, p.w_size, p.w_iter, p.w_eps, p.whitening, p.normalize, seed=out.extra.get("w_seed", 0))
        return LossOut(loss)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        self.steps_done.add()
