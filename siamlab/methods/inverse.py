"""Trainable Inverse Predictor (ZHANG Fig. 2c, §2.3, Fig. 3, A.5 Alg. 5).

The new encoder F = h∘f is pulled towards z*_b = h⁻¹(p_b), an inverse predictor h⁻¹ (same
architecture as h) that learns to map p back to z. Three losses, with D(x, y) = −X·sg(Y):
  L_pred     = ½[D(h(sg z_a), z_b) + D(h(sg z_b), z_a)]          trains h as in SimSiam
  L_inv_pred = ½[D(h⁻¹(sg p_a), z_a) + D(h⁻¹(sg p_b), z_b)]      trains h⁻¹
  L_enc      = ½[D(p_a, h⁻¹(p_b)) + D(p_b, h⁻¹(p_a))]           trains f and h (F = h∘f)
(Alg. 5 omits the /2 on L_enc's second term; read as a typo, the loss is kept symmetric.)
It equals SimSiam when z*_b = z_b; Fig. 3: trainable, slightly below SimSiam.
"""
from __future__ import annotations

from ..losses.cosine import negative_cosine
from . import register
from .base import Forward, GradFrame, LossOut, Method
from .naive import encode, encoder_predictor_groups, make_predictor, symmetric_frame
from .simsiam import SimSiamParams
from .sympred import symmetric_sg


@register
class InversePredictor(Method):
    name = "inverse"
    description = "SimSiam with a trainable inverse predictor h^-1 making the target (ZHANG Fig. 2c, Fig. 3, Alg. 5)."
    reference = "ZHANG §2.3, Fig. 2c, Fig. 3, A.5 Alg. 5"
    Params = SimSiamParams

    def __init__(self, encoder, params: SimSiamParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = make_predictor(params, model_cfg, encoder.out_dim)
        self.inverse = make_predictor(params, model_cfg, encoder.out_dim)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        ps = [self.predictor(z) for z in zs]
        extra = {
            "p_sg_input": [self.predictor(z.detach()) for z in zs],  # h(sg z): trains h
            "z_star": [self.inverse(p.detach()) for p in ps],  # h⁻¹(sg p): trains h⁻¹, L_enc target
        }
        return Forward(z=zs, p=ps, h=hs, index=index, extra=extra)

    def loss(self, out: Forward) -> LossOut:
        (z1, z2), (p1, p2) = out.z, out.p
        d1, d2 = out.extra["p_sg_input"]
        s1, s2 = out.extra["z_star"]
        l_pred = symmetric_sg(d1, d2, z1, z2)
        l_inv = 0.5 * (negative_cosine(s1, z1.detach()) + negative_cosine(s2, z2.detach()))
        l_enc = symmetric_sg(p1, p2, s1, s2)
        terms = {"l_pred": l_pred.detach(), "l_inv_pred": l_inv.detach(), "l_enc": l_enc.detach()}
        return LossOut(l_pred + l_inv + l_enc, terms)

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂P_a = Z*_b / (2M) = P_b + (Z*_b − P_b): basic P_b, G_e = Z*_b − P_b (ZHANG §3.2 with h⁻¹).
        return symmetric_frame(out, "p")

    def param_groups(self):
        return encoder_predictor_groups(self, self.predictor, self.inverse)
