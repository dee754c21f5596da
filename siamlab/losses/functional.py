"""Shared pieces of every loss: l2-normalization that diagnostics can intercept, and batch gathering.

``l2n`` is how every loss normalizes. Inside :func:`treat_norm_as_constant` it divides by a
*detached* norm, so that autograd returns the gradient on the normalized vector Z itself (the
quantity ZHANG §3 analyses: −∂L_cos/∂Z_a = Z_b, eq. 3) rather than its projection on the tangent
plane of the sphere. Outside the context it is the ordinary ``F.normalize``.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F

_CONST_NORM = contextvars.ContextVar("siamlab_const_norm", default=False)


@contextlib.contextmanager
def treat_norm_as_constant():
    """Within this block ``l2n(x)`` = x / sg(‖x‖): gradients are taken on Z = z/‖z‖ as a free vector."""
    token = _CONST_NORM.set(True)
    try:
        yield
    finally:
        _CONST_NORM.reset(token)


def l2n(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """l2-normalize along ``dim`` (see module docstring for the diagnostic mode)."""
    if _CONST_NORM.get():
        return x / x.norm(dim=dim, keepdim=True).clamp_min(eps).detach()
    return F.normalize(x, dim=dim, eps=eps)


def gather(x: torch.Tensor) -> torch.Tensor:
    """The global batch: ``x`` from every rank concatenated along dim 0, carrying gradient to the local part.

    Identity when not running distributed. Defined in :mod:`siamlab.collectives`.
    """
    from ..collectives import gather_with_grad

    return gather_with_grad(x)
