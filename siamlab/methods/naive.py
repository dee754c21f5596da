"""Symmetric Siamese baselines of ZHANG §2–3 and CENTER Fig. 4: Naive Siamese (eq. 1), SimSiam without
predictor (stop-gradient only) and SimSiam without stop-gradient (predictor only).

Also holds the small helpers the rest of ZHANG's SimSiam family shares.
"""
from __future__ import annotations

from ..losses.cosine import negative_cosine
from ..models import build_predictor
from . import register
from .base import Forward, GradFrame, LossOut, Method
from .simsiam import SimSiamParams


def encode(encoder, views) -> tuple[list, list]:
    """(h, z) of every view, each view through the encoder on its own (its own BN batch statistics)."""
    hs, zs = zip(*(encoder(v) for v in views))
    return list(hs), list(zs)


def make_predictor(params, model_cfg, dim: int):
    """The predictor chosen by ``method.predictor`` / ``method.normalize_input`` (ZHANG A.1, §5)."""
    return build_predictor(params.predictor, dim, model_cfg.pred_hidden, normalize_input=params.normalize_input)


def encoder_predictor_groups(method, *heads) -> list[dict]:
    """Optimizer groups: the encoder, and every head in a group named ``predictor`` (fixed lr, ZHANG A.1)."""
    head_params = [p for h in heads for p in h.parameters()]
    return [{"params": list(method.encoder.parameters()), "name": "encoder"},
            {"params": head_params, "name": "predictor"}]


def symmetric_frame(out: Forward, kind: str) -> GradFrame:
    """Gradient on view 0's ``kind`` ("z" or "p") of a ½-symmetrized batch-mean cosine loss whose basic
    gradient is the same kind on view 1 (ZHANG §3.2): −∂L/∂X_a = target / (2M)."""
    return GradFrame(anchor=(kind, 0), basic=(kind, 1), scale=2.0 * out.z[0].shape[0])


@register
class NaiveSiamese(Method):
    name = "naive"
    description = "Naive Siamese: symmetric cosine, no predictor, no stop-gradient; collapses (ZHANG eq. 1, Table 2)."
    reference = "ZHANG eq. 1, §3.1, Table 2"

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        # ½[−Z_a·Z_b − Z_b·Z_a] = −Z_a·Z_b, gradient through both views (eq. 1).
        return LossOut(negative_cosine(out.z[0], out.z[1]))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂Z_a = Z_b / M (eq. 3): basic gradient Z_b, no extra gradient.
        return GradFrame(anchor=("z", 0), basic=("z", 1), scale=float(out.z[0].shape[0]))


@register
class SimSiamNoPredictor(Method):
    name = "simsiam_nopred"
    description = "SimSiam without predictor: stop-gradient only, collapses (Chen & He 2021; CENTER Fig. 4)."
    reference = "Chen & He 2021 Table 1; CENTER §3.2, Fig. 4; ZHANG §3.2"

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, h=hs, index=index)

    def loss(self, out: Forward) -> LossOut:
        z1, z2 = out.z[0], out.z[1]
        return LossOut(0.5 * (negative_cosine(z1, z2.detach()) + negative_cosine(z2, z1.detach())))

    def gradient_frame(self, out: Forward) -> GradFrame:
        return symmetric_frame(out, "z")


class PredictorOnEveryView(Method):
    """Shared shape of SimSiam-like setups: one predictor (``method.predictor``) applied to every view's z."""

    def __init__(self, encoder, params, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = make_predictor(params, model_cfg, encoder.out_dim)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        return Forward(z=zs, p=[self.predictor(z) for z in zs], h=hs, index=index)


@register
class SimSiamNoStopGrad(PredictorOnEveryView):
    name = "simsiam_nosg"
    description = "SimSiam without stop-gradient: predictor on both paths, gradient through the target; collapses (CENTER Fig. 4)."
    reference = "Chen & He 2021 Table 1; CENTER §3.2, Fig. 4"
    Params = SimSiamParams

    def loss(self, out: Forward) -> LossOut:
        # ZHANG eq. 2 with sg removed: −½[P_a·Z_b + P_b·Z_a].
        z1, z2 = out.z
        p1, p2 = out.p
        return LossOut(0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1)))

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L/∂P_a = Z_b / (2M), as SimSiam: basic P_b, G_e = Z_b − P_b.
        return symmetric_frame(out, "p")

    def param_groups(self):
        return encoder_predictor_groups(self, self.predictor)
