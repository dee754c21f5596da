"""Triplet with a random negative and no clipping (ZHANG §3.3, Table 3): L = −Z_a·sg(Z_b − Z_n)."""
from __future__ import annotations

import torch
from torch import nn

from .. import collectives
from ..errors import ConfigError
from ..losses.triplet import triplet_loss
from . import register
from .base import Forward, GradFrame, LossOut, Method

NEGATIVE_SEED = 0x7217


def random_negatives(n: int, device=None, generator=None) -> torch.Tensor:
    """For each i a uniformly random j ≠ i in [0, n): i + U{1, n−1} mod n."""
    if n < 2:
        raise ConfigError(f"a random negative needs a global batch of at least 2 samples, not {n}; raise optim.batch_size.")
    shift = torch.randint(1, n, (n,), device=device, generator=generator)
    return (torch.arange(n, device=device) + shift) % n


class GlobalNegatives(nn.Module):
    """ZHANG §3.3's random negative drawn from the *global* batch: for each of this rank's anchors, the
    index of a uniformly random other sample of the global batch (rows rank·n:(rank+1)·n are this rank's).

    The indices come from a private CPU generator seeded with a fixed seed (not the global RNG, which the
    trainer seeds per rank): every rank draws the whole global batch's indices and advances it identically
    (one draw per forward, which every rank runs), so N processes pick exactly the negatives that one
    process holding the whole batch picks (which samples they point at still follows engine.seed's data
    order). Its state is the module's extra state (saved in checkpoints: resume is exact, on any device). The indices reach the device by a pinned, non-blocking copy: no host
    synchronization.
    """

    def __init__(self, seed: int = NEGATIVE_SEED):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    @torch.compiler.disable
    def forward(self, n: int, device: torch.device) -> torch.Tensor:
        r = collectives.rank()
        neg = random_negatives(n * collectives.world_size(), generator=self.generator)[r * n:(r + 1) * n]
        if device.type == "cuda":
            return neg.pin_memory().to(device, non_blocking=True)
        return neg.to(device)

    def get_extra_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint written before the negatives were global has no generator state: keep this one
        state_dict.setdefault(prefix + "_extra_state", self.get_extra_state())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register
class Triplet(Method):
    name = "triplet"
    description = "Triplet loss with a random in-batch negative, no clipping (ZHANG §3.3)."
    reference = "ZHANG §3.3, Table 3; CENTER eq. 6"
    Params = None  # the experiment varies only the surgery on G_e (ZHANG Table 3)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.negatives = GlobalNegatives()

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views[:2]))
        n, device = zs[0].shape[0], zs[0].device
        negs = [self.negatives(n, device), self.negatives(n, device)]  # global-batch rows
        return Forward(z=list(zs), h=list(hs), index=index, extra={"neg_index": negs})

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        n1, n2 = out.extra["neg_index"]
        # Z_n is the positive view of another sample of the global batch: Z_b[j] for anchor Z_a[i], Z_a[j'] for
        # Z_b[i]; it sits inside the stop-gradient, so gathering without gradient is enough.
        return LossOut(triplet_loss(z1, z2, collectives.gather_nograd(z2)[n1], collectives.gather_nograd(z1)[n2]))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = (Z_b − Z_n)/(2M): basic Z_b, G_e = −Z_n (ZHANG §3.3).
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=2.0 * out.z[0].shape[0])
