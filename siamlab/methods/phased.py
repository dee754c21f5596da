"""Phase schedules (ZHANG §3.5, Fig. 5b): one run that switches loss at given epochs, e.g. SimSiam for 5
epochs, the collapsing loss of eq. 1 for one, then the de-correlation term of A.6 alone.

``RunConfig.phases = [{"epoch": 0, "method": {"name": "simsiam", ...params}}, {"epoch": 5, "method":
{"name": "naive"}}, ...]``. Every phase is a registered method built around the *same* encoder object
(predictors and other heads belong to their phase); :class:`PhasedMethod` delegates to the phase whose
start epoch was reached last and adds its index to the logged terms as ``phase``.
"""
from __future__ import annotations

import torch

from ..config import MethodConfig
from ..errors import bad_value, unknown_name
from . import available, build_method
from .base import Forward, GradFrame, LossOut, Method


class PhasedMethod(Method):
    name = "phased"
    description = "Switches between methods at given epochs, sharing one encoder (ZHANG §3.5, Fig. 5b)."
    reference = "ZHANG §3.5, Fig. 5b"

    def __init__(self, encoder, starts: list[int], methods: list[Method], model_cfg=None):
        super().__init__(encoder, None, model_cfg)
        if any(m.encoder is not encoder for m in methods):
            raise ValueError("every phase must be built around the shared encoder")
        self.starts = list(starts)
        self.phases = torch.nn.ModuleList(methods)
        self.active = 0
        self.unused_parameters = True  # DDP: the heads of the phases not running get no gradient
        self._point_predictor()

    # --- phase selection ---------------------------------------------------------------------
    def phase_at(self, epoch: int) -> int:
        """Index of the phase running at ``epoch``: the last one whose start epoch is <= epoch."""
        return max(i for i, s in enumerate(self.starts) if s <= epoch)

    def _point_predictor(self) -> None:
        # A plain (unregistered) reference, so the state-dict keys do not change with the phase.
        object.__setattr__(self, "predictor", self.phases[self.active].predictor)

    def on_epoch_start(self, epoch: int) -> None:
        self.active = self.phase_at(epoch)
        self._point_predictor()
        self.phases[self.active].on_epoch_start(epoch)

    def _phase_of(self, out: Forward) -> Method:
        return self.phases[int(out.extra.get("phase", self.active))]

    # --- the method interface, delegated -----------------------------------------------------
    def forward(self, views, index=None) -> Forward:
        out = self.phases[self.active](views, index)
        out.extra["phase"] = self.active
        return out

    def _with_phase(self, lo: LossOut, out: Forward) -> LossOut:
        phase = float(out.extra.get("phase", self.active))
        return LossOut(lo.loss, {**lo.terms, "phase": phase})

    def loss(self, out: Forward) -> LossOut:
        return self._with_phase(self._phase_of(out).loss(out), out)

    def total_loss(self, out: Forward) -> LossOut:
        return self._with_phase(self._phase_of(out).total_loss(out), out)

    def gradient_frame(self, out: Forward) -> GradFrame:
        return self._phase_of(out).gradient_frame(out)

    def param_groups(self) -> list[dict]:
        return merge_param_groups([m.param_groups() for m in self.phases])

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        # Only the running phase: e.g. a Tanh(FC) predictor of a phase not running must not be re-clamped.
        self.phases[self.active].after_step(step, total_steps)

    def bind_dataset(self, num_samples: int) -> None:
        for m in self.phases:
            m.bind_dataset(num_samples)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict:
        return self.phases[self.active].embed(x)


def merge_param_groups(group_lists: list[list[dict]]) -> list[dict]:
    """Union of the phases' optimizer groups: groups of the same name merge (first options win) and a
    parameter shared by several phases (the encoder) stays in the first group that lists it."""
    merged: dict[str, dict] = {}
    seen: set[int] = set()
    for groups in group_lists:
        for g in groups:
            name = g.get("name", "all")
            target = merged.setdefault(name, {**g, "params": []})
            for p in g["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    target["params"].append(p)
    return list(merged.values())


# --- building from RunConfig.phases --------------------------------------------------------------

def _phase_method_config(i: int, spec) -> MethodConfig:
    """MethodConfig of phases[i].method: {"name": ..., "decor_weight": w, "params": {...}, other keys = params}."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise bad_value(f"phases[{i}].method", spec, 'a mapping with a method name, e.g. {"name": "simsiam"}')
    rest = {k: v for k, v in spec.items() if k not in ("name", "params", "decor_weight")}
    params = {**(spec.get("params") or {}), **rest}
    names = available()
    if spec["name"] not in names:
        raise unknown_name(f"phases[{i}].method.name", spec["name"], names)
    weight = spec.get("decor_weight", 0.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise bad_value(f"phases[{i}].method.decor_weight", weight, "a number >= 0")
    return MethodConfig(name=spec["name"], decor_weight=float(weight), params=params)


def validate_phases(phases, epochs: int) -> list[tuple[int, MethodConfig]]:
    """Check RunConfig.phases (ZHANG Fig. 5b schedule) and return (start epoch, MethodConfig) pairs."""
    if not isinstance(phases, list) or not phases:
        raise bad_value("phases", phases, 'a non-empty list of {"epoch": E, "method": {"name": ...}} entries')
    out = []
    for i, ph in enumerate(phases):
        if not isinstance(ph, dict) or set(ph) != {"epoch", "method"}:
            raise bad_value(f"phases[{i}]", ph, 'a mapping with exactly the keys "epoch" and "method"')
        e = ph["epoch"]
        if isinstance(e, bool) or not isinstance(e, int):
            raise bad_value(f"phases[{i}].epoch", e, "an integer epoch")
        if i == 0 and e != 0:
            raise bad_value("phases[0].epoch", e, "0 (the first phase starts the run)")
        if i > 0 and e <= out[-1][0]:
            raise bad_value(f"phases[{i}].epoch", e, f"an epoch after phases[{i - 1}].epoch={out[-1][0]}")
        if e >= epochs:
            raise bad_value(f"phases[{i}].epoch", e, f"an epoch below optim.epochs={epochs}, or the phase never runs")
        out.append((e, _phase_method_config(i, ph["method"])))
    return out


def build_phased(run_cfg, encoder, model_cfg) -> PhasedMethod:
    """The PhasedMethod of ``run_cfg.phases`` around ``encoder`` (shared by every phase)."""
    specs = validate_phases(run_cfg.phases, run_cfg.optim.epochs)
    methods = [build_method(mc, encoder, model_cfg) for _, mc in specs]
    return PhasedMethod(encoder, [e for e, _ in specs], methods, model_cfg)
