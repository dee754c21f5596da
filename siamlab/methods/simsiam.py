"""SimSiam (Chen & He 2021; ZHANG eq. 2 and A.1): predictor on one path, stop-gradient on the other."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.cosine import simsiam_loss
from ..models import PREDICTORS, build_predictor
from . import register
from .base import Forward, GradFrame, LossOut, Method, require


@dataclass
class SimSiamParams:
    predictor: str = "mlp"  # see siamlab.models.PREDICTORS (mlp = FC-BN-ReLU-FC, ZHANG A.1)
    normalize_input: bool = False  # l2-normalize z before the predictor (ZHANG §5)

    def validate(self):
        require(self.predictor in PREDICTORS, "method.predictor", self.predictor, "one of " + ", ".join(PREDICTORS))


@register
class SimSiam(Method):
    name = "simsiam"
    description = "Predictor + stop-gradient, symmetric negative cosine (ZHANG eq. 2)."
    reference = "Chen & He 2021; ZHANG eq. 2, A.1"
    Params = SimSiamParams

    def __init__(self, encoder, params: SimSiamParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = build_predictor(
            params.predictor, encoder.out_dim, model_cfg.pred_hidden, normalize_input=params.normalize_input
        )

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        ps = [self.predictor(z) for z in zs]
        return Forward(z=list(zs), p=ps, h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        p1, p2 = out.p[0], out.p[1]
        return LossOut(simsiam_loss(p1, p2, z1, z2))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂P_a = Z_b / (2M): basic part P_b, G_e = Z_b − P_b (ZHANG §3.2).
        return GradFrame(anchor=("p", 0), basic=("p", 1), scale=2.0 * out.z[0].shape[0])

    def param_groups(self):
        return [
            {"params": list(self.encoder.parameters()), "name": "encoder"},
            {"params": list(self.predictor.parameters()), "name": "predictor"},
        ]
