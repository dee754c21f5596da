"""Symmetric Predictor (ZHANG Fig. 2b, §2.3, A.4 Algs. 3–4): the predictor on *both* paths, so the new
encoder F = h∘f is trained as a symmetric SimSiam without predictor; it collapses (Table 2, Fig. 8).

variant="alg3": L = ½[D(p_a, p_b) + D(p_b, p_a)], D(x, y) = −X·sg(Y): h is simply part of F (Alg. 3).
variant="alg4": h is additionally trained as in SimSiam by L_pred = ½[D(h(sg z_a), z_b) + D(h(sg z_b), z_a)],
  and F by L_enc = ½[D(p_a, p_b) + D(p_b, p_a)] (Alg. 4). By default L_enc reaches only the encoder
  (h is evaluated with frozen weights) so that h is trained by L_pred alone; ``enc_trains_predictor=true``
  lets L_enc's gradient reach h too, as Alg. 4's pseudo-code literally does.
variant="alternating": the A.4 variant that alternates: ``alternate_every`` steps of L_enc with h fixed,
  then as many steps of L_pred (h only), and so on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from ..losses.cosine import negative_cosine
from ..models import PREDICTORS
from . import register
from .base import Forward, GradFrame, LossOut, Method, StepCounter, require
from .naive import encode, encoder_predictor_groups, make_predictor, symmetric_frame

VARIANTS = ("alg3", "alg4", "alternating")


@dataclass
class SymPredParams:
    variant: str = "alg4"  # alg3 | alg4 | alternating (ZHANG A.4)
    predictor: str = "mlp"
    normalize_input: bool = False
    enc_trains_predictor: bool = False  # alg4 only: let L_enc's gradient reach h (Alg. 4 pseudo-code as written)
    alternate_every: int = 1  # alternating only: optimizer steps per phase

    def validate(self):
        require(self.variant in VARIANTS, "method.variant", self.variant, "one of " + ", ".join(VARIANTS))
        require(self.predictor in PREDICTORS, "method.predictor", self.predictor, "one of " + ", ".join(PREDICTORS))
        require(self.alternate_every >= 1, "method.alternate_every", self.alternate_every, "an integer >= 1")


def frozen_call(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """module(x) with its parameters detached and its buffers copied: gradient reaches x only, and BN
    running statistics are not updated a second time."""
    state = {n: p.detach() for n, p in module.named_parameters()}
    state.update({n: b.clone() for n, b in module.named_buffers()})
    return functional_call(module, state, (x,))


def symmetric_sg(a: torch.Tensor, b: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
    """½[D(a, tb) + D(b, ta)] with D(x, y) = −X·sg(Y) (ZHANG A.4's D)."""
    return 0.5 * (negative_cosine(a, tb.detach()) + negative_cosine(b, ta.detach()))


@register
class SymmetricPredictor(Method):
    name = "sympred"
    description = "Symmetric Predictor: predictor on both paths; collapses (ZHANG Fig. 2b, Algs. 3-4, alternating variant)."
    reference = "ZHANG §2.3, Fig. 2b, Table 2, A.4 Algs. 3-4"
    Params = SymPredParams

    def __init__(self, encoder, params: SymPredParams, model_cfg):
        super().__init__(encoder, params, model_cfg)
        self.predictor = make_predictor(params, model_cfg, encoder.out_dim)
        self.updates = StepCounter()  # optimizer steps taken
        self.unused_parameters = params.variant == "alternating"  # DDP: each step leaves one part without gradient

    def _predictor_turn(self) -> bool:
        """alternating: whether this step trains the predictor (else the encoder)."""
        return bool((int(self.updates) // self.params.alternate_every) % 2)

    def forward(self, views, index=None) -> Forward:
        hs, zs = encode(self.encoder, views)
        v = self.params.variant
        freeze = v == "alternating" or (v == "alg4" and not self.params.enc_trains_predictor)
        ps = [frozen_call(self.predictor, z) if freeze else self.predictor(z) for z in zs]
        extra = {}
        if v != "alg3":
            extra["p_sg_input"] = [self.predictor(z.detach()) for z in zs]
        if v == "alternating":
            extra["predictor_turn"] = self._predictor_turn()
        return Forward(z=zs, p=ps, h=hs, index=index, extra=extra)

    def loss(self, out: Forward) -> LossOut:
        (z1, z2), (p1, p2) = out.z, out.p
        l_enc = symmetric_sg(p1, p2, p1, p2)
        if self.params.variant == "alg3":
            return LossOut(l_enc)
        d1, d2 = out.extra["p_sg_input"]
        l_pred = symmetric_sg(d1, d2, z1, z2)
        terms = {"l_enc": l_enc.detach(), "l_pred": l_pred.detach()}
        if self.params.variant == "alternating":
            return LossOut(l_pred if out.extra["predictor_turn"] else l_enc, terms)
        return LossOut(l_pred + l_enc, terms)

    def gradient_frame(self, out: Forward) -> GradFrame:
        # −∂L_enc/∂P_a = P_b / (2M): basic P_b, no extra gradient (ZHANG §3.2, Fig. 2b).
        return symmetric_frame(out, "p")

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        self.updates.add()

    def param_groups(self):
        return encoder_predictor_groups(self, self.predictor)
