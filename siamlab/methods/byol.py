"""BYOL (Grill et al. 2020; BRIDGE eq. 1): online predictor, EMA target network, normalized MSE."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses.byol import byol_loss
from ..models import PREDICTORS, build_predictor
from . import register
from .base import Forward, GradFrame, LossOut, require
from .ema import EMAMethod


@dataclass
class BYOLParams:
    predictor: str = "mlp"  # see siamlab.models.PREDICTORS; BRIDGE Fig. 1 also uses "linear"
    momentum: float = 0.996  # τ_base of the EMA target (CENTER Fig. 7 varies it)
    cosine_schedule: bool = True  # raise τ from τ_base to 1 with BYOL's cosine schedule
    normalize_input: bool = False  # l2-normalize z before the predictor (ZHANG §5)

    def validate(self):
        require(self.predictor in PREDICTORS, "method.predictor", self.predictor, "one of " + ", ".join(PREDICTORS))
        require(0.0 <= self.momentum <= 1.0, "method.momentum", self.momentum, "a number in [0, 1] (e.g. 0.996)")


@register
class BYOL(EMAMethod):
    name = "byol"
    description = "Online predictor regresses an EMA target's normalized projection (BRIDGE eq. 1)."
    reference = "Grill et al. 2020; BRIDGE eq. 1; CENTER §2.4"
    Params = BYOLParams

    def __init__(self, encoder, params: BYOLParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = build_predictor(params.predictor, encoder.out_dim, model_cfg.pred_hidden,
                                         normalize_input=params.normalize_input)
        self._init_target()

    def forward(self, views, index=None) -> Forward:
        views = views[:2]
        hs, zs = zip(*(self.encoder(v) for v in views))
        ps = [self.predictor(z) for z in zs]
        return Forward(z=list(zs), p=ps, targets=self.target_z(views), h=list(hs), index=index,
                       extra={"momentum": self._momentum})

    def loss(self, out: Forward) -> LossOut:
        (p1, p2), (t1, t2) = out.p, out.targets
        return LossOut(byol_loss(p1, p2, t1, t2), {"momentum": float(out.extra["momentum"])})

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂P_a = 2 T_b / M = (2/M)[P_b + (T_b − P_b)]: basic P_b as in SimSiam (ZHANG eq. 4).
        return GradFrame(anchor=("p", 0), basic=("p", 1), scale=out.z[0].shape[0] / 2.0)

    def param_groups(self):
        return [
            {"params": list(self.encoder.parameters()), "name": "encoder"},
            {"params": list(self.predictor.parameters()), "name": "online_predictor"},
        ]
