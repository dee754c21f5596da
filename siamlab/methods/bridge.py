"""The BRIDGE method (Liu et al. 2022, §4): linear predictor, invariance + covariance term, no stop-gradient."""
from __future__ import annotations

from dataclasses import dataclass

from ..losses.bridge import INV_SCALES, bridge_loss, check_partitions
from ..models import build_predictor
from . import register
from .base import Forward, LossOut, Method, require


@dataclass
class BridgeParams:
    c_inv: float = 25.0  # weight of the invariance term (Table 1 best: 25)
    c_cov: float = 1.0  # weight of the covariance-maintaining term (Table 1 best: 1)
    k: int = 8  # partitions of the global batch (§4.4; Table 1 best: 8 or 32)
    predictor: str = "linear"  # linear W_p | identity (I-PRED, §5.4)
    predictor_bias: bool = False  # the authors' code uses nn.Linear with bias; the paper has none
    standardize: bool = True  # STD layer, eq. 18 (the authors' code defaults to off)
    stop_gradient: bool = False  # Table 3 "StopGrad" on the invariance target
    symmetric: bool = True  # sum of both directions F¹→F² and F²→F¹ (§4.2)
    inv_scale: str = "mean"  # mean over samples and dimensions (authors' code, the units of c_inv); sum: eq. 17 literally

    def validate(self):
        require(self.c_inv >= 0, "method.c_inv", self.c_inv, "a number >= 0")
        require(self.c_cov >= 0, "method.c_cov", self.c_cov, "a number >= 0")
        require(self.k >= 1, "method.k", self.k, "an integer >= 1 dividing the global batch size")
        require(self.predictor in ("linear", "identity"), "method.predictor", self.predictor, "linear or identity")
        require(self.inv_scale in INV_SCALES, "method.inv_scale", self.inv_scale, " or ".join(INV_SCALES))

    def check_run(self, cfg) -> None:
        """Checks against the rest of the run config, made before anything is loaded: k divides the batch."""
        check_partitions(cfg.optim.batch_size, self.k)


@register
class Bridge(Method):
    """BRIDGE eq. 19 with STD (eq. 18), k partitions, a linear predictor W_p or I-PRED, in the units of the
    authors' code (invariance averaged over dimensions, partitions averaged: :mod:`siamlab.losses.bridge`).

    The predictor and the standardization act inside the loss, on the gathered global batch (STD
    needs global statistics, the covariance term needs W_p itself), so ``Forward.p`` is None.
    ``self.predictor`` is the zoo's ``linear`` (or ``linear_bias``) predictor; its ``linear_weight``
    is W_p (None for I-PRED). Its parameter group is named ``linear_predictor``, not ``predictor``:
    BRIDGE §5.1 uses one lr schedule for the whole model. Gradient frame: the default (on z, no
    basic part).
    """

    name = "bridge"
    description = "BRIDGE: linear predictor, invariance + partitioned covariance-maintaining term, STD, no stop-grad."
    reference = "Liu et al. 2022 (BRIDGE) eqs. 17-19, §4.2-4.4, Table 3"
    Params = BridgeParams

    def __init__(self, encoder, params: BridgeParams, model_cfg=None):
        super().__init__(encoder, params, model_cfg)
        if params.predictor == "linear":
            kind = "linear_bias" if params.predictor_bias else "linear"
            self.predictor = build_predictor(kind, encoder.out_dim, encoder.out_dim)

    def forward(self, views, index=None) -> Forward:
        hs, zs = zip(*(self.encoder(v) for v in views))
        return Forward(z=list(zs), h=list(hs), index=index)

    def loss(self, out: Forward) -> LossOut:
        p = self.params
        weight = None if self.predictor is None else self.predictor.linear_weight
        bias = None if self.predictor is None else self.predictor.last_bias
        loss, terms = bridge_loss(out.z[0], out.z[1], weight, bias, p.c_inv, p.c_cov, p.k, p.standardize,
                                  p.stop_gradient, p.symmetric, p.inv_scale, with_terms=True)
        return LossOut(loss, terms)

    def param_groups(self):
        groups = [{"params": list(self.encoder.parameters()), "name": "encoder"}]
        if self.predictor is not None:
            groups.append({"params": list(self.predictor.parameters()), "name": "linear_predictor"})
        return groups
