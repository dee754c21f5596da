"""Projector and predictor heads (ZHANG A.1, §5, Table 5, A.8; BRIDGE §3 linear predictor W_p).

Projector convention (Chen & He 2021 code, which ZHANG A.1 follows): FC layers that feed a BN have
no bias (the BN removes it), and the projector's final BN has no affine parameters
(``BatchNorm1d(out, affine=False)``), so in training mode z has zero batch mean and unit variance
per dimension. The final BN is exposed as ``final_bn`` and ``pre_bn(h)`` returns its input, for the
"center norm before / after the final BN" diagnostic (CENTER Fig. 5).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError, unknown_name

PREDICTORS = ("mlp", "linear", "linear_bias", "fc_fc_bias", "tanh_fc", "bias", "identity")


class ProjectionMLP(nn.Sequential):
    """SimSiam projector (ZHANG A.1): FC-BN-ReLU-FC-BN-ReLU-FC-BN for 3 layers, FC-BN-ReLU-FC-BN for 2, FC-BN for 1."""

    @property
    def final_bn(self) -> Optional[nn.BatchNorm1d]:
        """The output BN, or None for a projector built with ``final_bn=False``."""
        return self[-1] if isinstance(self[-1], nn.BatchNorm1d) else None

    def pre_bn(self, h: torch.Tensor) -> torch.Tensor:
        """The projector output before its final BN (CENTER Fig. 5 measures the center there and after)."""
        if self.final_bn is None:
            return self(h)
        for layer in list(self)[:-1]:
            h = layer(h)
        return h


def projection_mlp(
    in_dim: int, hidden: int, out: int, layers: int = 3, final_affine: bool = False, final_bn: bool = True
) -> ProjectionMLP:
    """Build the SimSiam projector of ``layers`` FC layers (ZHANG A.1); every FC is followed by BN.

    ``final_affine=False`` (default) is Chen & He's output BN without learnable scale/shift.
    ``final_bn=False`` ends with a plain FC with bias instead (the projectors of Barlow Twins,
    VICReg and BRIDGE, whose losses standardize or regularize z themselves).
    """
    if layers not in (1, 2, 3):
        raise ConfigError(f"model.proj_layers={layers!r} is not valid: expected 1, 2 or 3.")
    dims = [in_dim] + [hidden] * (layers - 1) + [out]
    mods: list[nn.Module] = []
    for i in range(layers):
        last = i == layers - 1
        if last and not final_bn:
            mods.append(nn.Linear(dims[i], dims[i + 1], bias=True))
            break
        mods.append(nn.Linear(dims[i], dims[i + 1], bias=False))
        mods.append(nn.BatchNorm1d(dims[i + 1], affine=final_affine or not last))
        if not last:
            mods.append(nn.ReLU())
    return ProjectionMLP(*mods)


class BiasLayer(nn.Module):
    """p = z + b with a single learnable bias b, initialised to 0 (ZHANG §5 "One bias", A.8 eq. 10)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.bias


class TanhLinear(nn.Linear):
    """One FC layer whose weight is replaced by tanh(weight) after every optimizer step (ZHANG §5, Tanh(FC)).

    ``Method.after_step`` calls :meth:`post_step` once per step on every submodule that defines it.
    """

    @torch.no_grad()
    def post_step(self) -> None:
        self.weight.copy_(torch.tanh(self.weight))


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """l2-normalization *layer* in front of the predictor (ZHANG §5).

    This is part of the network, not of a loss, so it always back-propagates through the norm
    (it deliberately does not use ``losses.functional.l2n``, whose diagnostic mode detaches the norm).
    """
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def _predictor_net(kind: str, dim: int, hidden: int) -> nn.Module:
    if kind == "mlp":  # ZHANG A.1: FC1 + BN + ReLU + FC2, 2048-512-2048
        return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                             nn.Linear(hidden, dim))
    if kind == "linear":  # BRIDGE eq. 4: p = W_p f
        return nn.Linear(dim, dim, bias=False)
    if kind == "linear_bias":
        return nn.Linear(dim, dim)
    if kind == "fc_fc_bias":  # ZHANG Table 5 "FC+FC+Bias": the MLP predictor without BN and ReLU
        return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.Linear(hidden, dim))
    if kind == "tanh_fc":  # ZHANG Table 5 "Tanh(FC)": a single FC, no bias
        return TanhLinear(dim, dim, bias=False)
    if kind == "bias":
        return BiasLayer(dim)
    return nn.Identity()


class Predictor(nn.Module):
    """A predictor head of one of the :data:`PREDICTORS` kinds, optionally l2-normalizing its input."""

    def __init__(self, kind: str, dim: int, hidden: int, normalize_input: bool = False):
        super().__init__()
        self.kind = kind
        self.normalize_input = normalize_input
        self.net = _predictor_net(kind, dim, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(unit_rows(z) if self.normalize_input else z)

    def _affine_layers(self) -> list:
        return [m for m in self.net.modules() if isinstance(m, (nn.Linear, BiasLayer))]

    @property
    def last_bias(self) -> Optional[torch.Tensor]:
        """Bias of the last layer (MLP's FC2, linear_bias, fc_fc_bias) or the single bias b_p; None if there is none.

        ZHANG Table 6 compares this vector with the center vector.
        """
        layers = self._affine_layers()
        return layers[-1].bias if layers else None

    @property
    def linear_weight(self) -> Optional[torch.Tensor]:
        """Effective dim x dim matrix W_p with p = W_p z (+ b) (BRIDGE §3), for the linear kinds; None otherwise.

        fc_fc_bias gives the product W_2 W_1. The tensor carries gradient (a loss may use it);
        detach it for diagnostics.
        """
        if self.kind not in ("linear", "linear_bias", "fc_fc_bias", "tanh_fc"):
            return None
        weight = None
        for layer in self._affine_layers():
            weight = layer.weight if weight is None else layer.weight @ weight
        return weight


def build_predictor(kind: str, dim: int, hidden: int, normalize_input: bool = False) -> Predictor:
    """Predictor of ``kind`` (see :data:`PREDICTORS`) on ``dim``-dimensional z; ``hidden`` is the bottleneck
    of ``mlp`` and ``fc_fc_bias`` (ZHANG A.1: 512). ``normalize_input`` adds the l2-normalization layer of ZHANG §5."""
    if kind not in PREDICTORS:
        raise unknown_name("method.predictor", kind, PREDICTORS)
    return Predictor(kind, dim, hidden, normalize_input)
