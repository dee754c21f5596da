"""The method interface every joint-embedding method implements.

A method is an ``nn.Module`` holding an encoder (backbone + projector), an optional predictor and
whatever makes its targets (stop-gradient, an EMA copy, a memory). Its ``forward`` returns a
:class:`Forward` record of the tensors it produced; its ``loss`` is a pure function of that record.
Keeping the two apart is what lets diagnostics (:mod:`siamlab.analysis`), gradient surgery and
evaluation work on every method without knowing which one it is: they can re-run ``loss`` on
detached copies of ``z`` / ``p`` and differentiate with respect to them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import nn

from ..errors import ConfigError, bad_value


@dataclass
class Forward:
    """Tensors of one training step, one entry per augmented view.

    z:        projector outputs (raw, not normalized); they carry gradient unless the method
              stops it on purpose.
    p:        predictor outputs (raw), or None for methods without predictor.
    targets:  what each view is pulled towards when it is not simply another view's z
              (EMA teacher outputs, per-sample memory, ...); detached. None otherwise.
    h:        backbone features (before the projector).
    index:    dataset indices of the images in the batch (for per-sample memories).
    extra:    method-specific tensors the loss needs (e.g. SwAV scores, MoCo queue).
    """

    z: list
    p: Optional[list] = None
    targets: Optional[list] = None
    h: Optional[list] = None
    index: Optional[torch.Tensor] = None
    extra: dict = field(default_factory=dict)

    def replace(self, **kw) -> "Forward":
        return dataclasses.replace(self, **kw)


@dataclass
class LossOut:
    loss: torch.Tensor
    terms: dict = field(default_factory=dict)  # named scalar components, for logging


@dataclass(frozen=True)
class GradFrame:
    """How to read the gradient of this method's loss in ZHANG §3.2's terms.

    anchor: which tensor the gradient is taken on, e.g. ("p", 0) for SimSiam's P_a, ("z", 0) for Z_a.
    basic:  the tensor whose normalized value is the *basic gradient* (ZHANG §3.2: Z_b for Naive
            Siamese / triplet / InfoNCE, P_b for SimSiam), or None when the method has none.
    scale:  multiply −∂L/∂anchor (per sample) by this so that the basic part has coefficient 1
            (undoes the batch mean, the symmetrization and e.g. InfoNCE's 1/τ).
    """

    anchor: tuple = ("z", 0)
    basic: Optional[tuple] = None
    scale: float = 1.0


class StepCounter(nn.Module):
    """A count kept twice: as a Python int, read every step without waiting for the device, and as a
    buffer, so that checkpoints carry it (loading a checkpoint refreshes the int from the buffer).

    ``int(counter)`` reads it; ``counter.add(k)`` advances both. Use it for anything a step branches
    on (MoCo's queue pointer, how many steps SwAV's prototypes stay frozen, DirectPred's update count):
    ``int(buffer)`` would be a host synchronization on a GPU (siamlab.engine.hostsync).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("value", torch.zeros((), dtype=torch.long))
        self.n = 0

    def __int__(self) -> int:
        return self.n

    __index__ = __int__

    def add(self, k: int = 1) -> int:
        self.n += int(k)
        self.value.fill_(self.n)
        return self.n

    def set(self, n: int) -> None:
        self.n = int(n)
        self.value.fill_(self.n)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.n = int(self.value)  # once per load, not per step

    def extra_repr(self) -> str:
        return str(self.n)


class Method(nn.Module):
    """Base class. Subclasses set ``name``, ``description``, ``reference`` and ``Params``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    Params: ClassVar[type] = None  # a dataclass of the method's knobs, with defaults

    def __init__(self, encoder: nn.Module, params, model_cfg=None):
        super().__init__()
        self.encoder = encoder  # backbone + projector, see siamlab.models.Encoder
        self.params = params
        self.model_cfg = model_cfg
        self.predictor: Optional[nn.Module] = None

    # --- the interface -----------------------------------------------------------------------
    def forward(self, views: list, index: Optional[torch.Tensor] = None) -> Forward:
        raise TypeError(f"{type(self).__name__} must define forward(views, index)")

    def loss(self, out: Forward) -> LossOut:
        raise TypeError(f"{type(self).__name__} must define loss(out)")

    def gradient_frame(self, out: Forward) -> GradFrame:
        """See :class:`GradFrame`. Default: gradient on Z_a, no basic part, scaled by the batch size."""
        return GradFrame(anchor=("z", 0), basic=None, scale=float(out.z[0].shape[0]))

    def param_groups(self) -> list[dict]:
        """Parameter groups for the optimizer; a group with ``fixed_lr=True`` skips the schedule, and a group
        named ``predictor`` does too when ``optim.fix_predictor_lr`` (SimSiam's fixed predictor lr, ZHANG A.1)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "name": "all"}]

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Called after every optimizer step (EMA updates, weight clamps, ...).

        The default calls ``post_step()`` on every submodule that defines it (e.g. the Tanh(FC)
        predictor re-applies tanh to its weight, ZHANG §5). Overrides should call ``super()``.
        """
        for m in self.modules():
            if m is not self and hasattr(m, "post_step"):
                m.post_step()

    def bind_dataset(self, num_samples: int) -> None:
        """Called once before training with the training-set size (per-sample memories, ZHANG A.3)."""

    def total_loss(self, out: Forward) -> LossOut:
        """``loss(out)`` plus ``decor_weight`` × the de-correlation regularizer of ZHANG A.6 on each view's z.

        The trainer and the diagnostics call this, so the regularizer can be added to any method.
        """
        lo = self.loss(out)
        w = getattr(self, "decor_weight", 0.0)
        if not w:
            return lo
        from ..losses.decorrelation import decorrelation_loss

        reg = sum(decorrelation_loss(z) for z in out.z) / len(out.z)
        return LossOut(lo.loss + w * reg, {**lo.terms, "decor": reg.detach()})

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (schedules that change per epoch)."""

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict:
        """Clean-image features for evaluation: backbone ``h`` and projector ``z``."""
        h = self.encoder.backbone(x)
        return {"backbone": h, "projector": self.encoder.projector(h)}


def build_params(cls: type, given: dict, method_name: str):
    """Validate a user dict of method knobs against the method's Params dataclass."""
    from ..config import coerce
    import typing

    if cls is None:
        if given:
            raise ConfigError(f"method {method_name!r} takes no parameters, got {', '.join(given)}.")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in given.items():
        if k not in names:
            raise ConfigError(
                f"unknown parameter method.{k} for method {method_name!r}; valid parameters are: "
                f"{', '.join(sorted(names)) or '(none)'}."
            )
        kwargs[k] = coerce(f"method.{k}", v, hints[k])
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def require(ok: bool, field_name: str, value, allowed: str) -> None:
    """For ``Params.validate``: raise the standard one-sentence error when ``ok`` is false."""
    if not ok:
        raise bad_value(field_name, value, allowed)
