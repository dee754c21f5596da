"""SwAV (Caron et al. 2020): swapped prediction of Sinkhorn codes against prototypes (learnable or fixed)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses.swav import swav_loss
from ..models.heads import unit_rows
from . import register
from .base import Forward, LossOut, Method, StepCounter, require


@dataclass
class SwAVParams:
    num_prototypes: int = 300  # K (the paper uses 3000 on ImageNet; small for CPU runs)
    temperature: float = 0.1  # τ of the softmax over prototype scores
    epsilon: float = 0.05  # entropic regularization ε of Sinkhorn-Knopp
    sinkhorn_iterations: int = 3
    prototypes: str = "learnable"  # learnable | fixed (random uniform on the sphere, never trained; CENTER §3.4)
    freeze_prototypes_steps: int = 313  # official: prototypes get no update during the first iterations

    def validate(self):
        require(self.num_prototypes >= 2, "method.num_prototypes", self.num_prototypes, "an integer >= 2")
        require(self.temperature > 0, "method.temperature", self.temperature, "a number > 0")
        require(self.epsilon > 0, "method.epsilon", self.epsilon, "a number > 0")
        require(self.sinkhorn_iterations >= 1, "method.sinkhorn_iterations", self.sinkhorn_iterations,
                "an integer >= 1")
        require(self.prototypes in ("learnable", "fixed"), "method.prototypes", self.prototypes, "learnable or fixed")
        require(self.freeze_prototypes_steps >= 0, "method.freeze_prototypes_steps", self.freeze_prototypes_steps,
                "an integer >= 0")


def random_unit_vectors(k: int, dim: int) -> torch.Tensor:
    """k points uniform on the unit sphere of R^dim (normalized Gaussians)."""
    return unit_rows(torch.randn(k, dim))


@register
class SwAV(Method):
    """Codes from views 0 and 1 predict every other view (official ``crops_for_assign = [0, 1]``).

    Prototypes C (K × d) stay on the unit sphere: normalized at construction and after every step
    (the official code normalizes before every forward; same effect). ``fixed`` prototypes are a
    buffer: no gradient, never updated. While frozen, learnable prototypes enter the loss as
    ``C.detach() + 0·C``: their gradient is exactly zero (official: ``p.grad = None``) yet they stay in
    the graph so DDP sees every parameter; weight decay / momentum then only rescale the rows, which
    the re-normalization undoes. Gradient frame: the default (no basic part).
    """

    name = "swav"
    description = "SwAV: swapped prediction of Sinkhorn-Knopp codes over prototypes (learnable or fixed)."
    reference = "Caron et al. 2020 eqs. 1-5; CENTER §3.4 (fixed prototypes)"
    Params = SwAVParams

    def __init__(self, encoder, params: SwAVParams, model_cfg=None):
        super().__init__(encoder, params, model_cfg)
        init = random_unit_vectors(params.num_prototypes, encoder.out_dim)
        if params.prototypes == "fixed":
            self.register_buffer("prototypes", init)
        else:
            self.prototypes = nn.Parameter(init)
        self.steps_done = StepCounter()

    def prototypes_frozen(self) -> bool:
        return self.params.prototypes == "learnable" and int(self.steps_done) < self.params.freeze_prototypes_steps

    def prototype_matrix(self) -> torch.Tensor:
        c = self.prototypes
        return c.detach() + 0.0 * c if self.prototypes_frozen() else c

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        loss = swav_loss(out.z, self.prototype_matrix(), p.temperature, p.epsilon, p.sinkhorn_iterations)
        return LossOut(loss)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        if isinstance(self.prototypes, nn.Parameter):
            self.prototypes.copy_(unit_rows(self.prototypes))
        self.steps_done.add()

    def param_groups(self):
        groups = [{"params": list(self.encoder.parameters()), "name": "encoder"}]
        if isinstance(self.prototypes, nn.Parameter):
            groups.append({"params": [self.prototypes], "name": "prototypes"})
        return groups
