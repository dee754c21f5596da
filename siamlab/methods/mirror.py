"""Mirror SimSiam (ZHANG Fig. 1c, §2.3, A.4 Algs. 1–2): SimSiam with the gradient and stop-gradient paths
swapped. The predictor sees a detached z, p_b = h(sg(z_b)), and its output is the *target* that z_a is
pulled to, without stop-gradient: L = −Z_a·P_b (Alg. 1) or −½(Z_a·P_b + Z_b·P_a) (Alg. 2).
The encoder is trained only through Z, the predictor only through P. It collapses (Table 2) and may
diverge (A.4)."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.cosine import negative_cosine
from ..models import PREDICTORS
from . import register
from .base import Forward, GradFrame, LossOut, Method, require
from .naive import encode, encoder_predictor_groups, make_predictor

VARIANTS = ("symmetric", "one_sided")


@dataclass
class MirrorParams:
    variant: str = "symmetric"  # symmetric = Alg. 2, one_sided = Alg. 1
    predictor: str = "mlp"
    normalize_input: bool = False

    def validate(self):
        require(self.variant in VARIANTS, "method.variant", self.variant, "one of " + ", ".join(VARIANTS))
        require(self.predictor in PREDICTORS, "method.predictor", self.predictor, "one of " + ", ".join(PREDICTORS))


@register
class MirrorSimSiam(Method):
    name = "mirror"
    description = "Mirror SimSiam: predictor on the target path, input detached; collapses (ZHANG Fig. 1c, Algs. 1-2)."
    reference = "ZHANG §2.3, Fig. 1c, A.4 Algs. 1-2"
    Params = MirrorParams

    def __init__(self, encoder, params: MirrorParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = make_predictor(params, model_cfg, encoder.out_dim)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        ps = [self.predictor(z.detach()) for z in zs]
        return Forward(z=zs, p=ps, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        p1, p2 = out.p[0], out.p[1]
        if self.params.variant == "one_sided":
            return LossOut(negative_cosine(z1, p2))  # Alg. 1
        return LossOut(0.5 * (negative_cosine(z1, p2) + negative_cosine(z2, p1)))  # Alg. 2

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = P_b / (cM) = Z_b + (P_b − Z_b): basic Z_b, G_e = P_b − Z_b, o_e = o_p − o_z (§3.4).
        halves = 1.0 if self.params.variant == "one_sided" else 2.0
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=halves * out.z[0].shape[0])

    def param_groups(self):
        return encoder_predictor_groups(self, self.predictor)
