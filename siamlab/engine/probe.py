"""The online linear probe: trained during SSL training on the global batch's detached backbone features.

Its weights start the same on every rank (built right after the method, from the same seed) and every
rank steps it on the same gathered features and labels, so the ranks' probes stay identical; its
numbers are logged as ``probe_loss`` / ``probe_acc`` (tensors until a log step reads them).
"""
from __future__ import annotations

import torch

from .. import collectives


def build_probe(cfg, method, num_classes: int, device: torch.device):
    """An :class:`~siamlab.eval.linear.OnlineProbe` on ``method``'s backbone features, or None when
    ``eval.online_probe`` is off."""
    from ..eval.linear import OnlineProbe

    if not cfg.eval.online_probe:
        return None
    return OnlineProbe(method.encoder.backbone.out_dim, num_classes, cfg.eval.probe_lr).to(device)


def probe_step(probe, h: torch.Tensor, labels: torch.Tensor) -> dict:
    """One probe step on the global batch: this rank's features ``h`` and ``labels`` gathered over ranks."""
    feats = collectives.gather_nograd(h.detach().float())
    p = probe.step(feats, collectives.gather_nograd(labels))
    return {"probe_loss": p["loss"], "probe_acc": p["acc"]}

