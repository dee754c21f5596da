"""Gradient decomposition on the normalized representation, for any method (ZHANG §3.2–3.5, §4, A.7).

Through the method interface only: the method names its anchor, basic part and scale in
``gradient_frame(out)`` (see :class:`~siamlab.methods.base.GradFrame`); we make a detached leaf Z of
the anchor's normalized vector, substitute ``n·Z`` (n = sg(‖anchor‖)) into a copy of the ``Forward``
record whose other tensors are detached, re-run ``method.total_loss`` (``loss`` plus the optional
A.6 regularizer) inside :func:`~siamlab.losses.functional.treat_norm_as_constant` — so ``l2n(n·Z) =
Z`` and autograd returns the gradient on Z as a free vector, ZHANG eq. 3 — and take

    G = −∂L/∂Z · scale                                    (one row per sample of the anchor view)
    G_e = G − B,  B = the normalized ``basic`` tensor      (G_e = G when the method has no basic part)
    o_e = mean_i G_e,i,  r_e,i = G_e,i − o_e               (ZHANG §3.2)

Basic part per method family (ZHANG §3.2–3.4, §4):

* Naive Siamese, triplet (−Z_a·sg(Z_b − Z_n)), InfoNCE / SimCLR / MoCo: anchor Z_a, basic Z_b;
  G_e = −Z_n for the triplet (o_e = −o_z), G_e = −Σ_i λ_i Z_i for InfoNCE (A.7 eq. 6).
* SimSiam (and BYOL, whose target is the EMA teacher's z): anchor P_a, basic P_b; −∂L/∂P_a = Z_b,
  so G_e = Z_b − P_b and o_e = o_z − o_p (eq. 4).
* Mirror SimSiam: anchor Z_a, basic Z_b, G = P_b, so G_e = P_b − Z_b and o_e = o_p − o_z.
* Barlow Twins, VICReg, W-MSE, DINO, SwAV, the CENTER objective, BRIDGE: no basic part (None) —
  only the center / residual split of the full gradient G is reported.

The η-scan of ZHANG Fig. 5a measures how much of the anchor's own center o is in o_e: the cosine
between o_e − η·o and o vanishes at η* = o_e·o/‖o‖². o is the center of the anchor's normalized
vectors: o_p for SimSiam (anchor P_a, η_p ≈ −0.5 in the paper), o_z for Mirror SimSiam (anchor Z_a,
η_z ≈ 0.2). Fig. 5c compares r_e (and o_e) with the negative gradient of the A.6 de-correlation loss
on the anchor (:func:`siamlab.analysis.metrics.covariance_term`, our own implementation).

Limitation: tensors a loss reads from ``out.extra`` are not re-derived from the leaf, so gradient
paths through them are missed; a loss must compute anything that depends on z/p itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..losses.functional import gather, treat_norm_as_constant
from .metrics import covariance_term, unit

_EPS = 1e-12
_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass
class GradientParts:
    """Per-sample tensors of one decomposition, all float64 [M, d] (local batch)."""

    g: torch.Tensor  # G = −∂L/∂(anchor normalized) · scale
    anchor: torch.Tensor  # the anchor's normalized vectors (Z_a or P_a)
    basic: Optional[torch.Tensor]  # the normalized basic tensor, or None
    decor: torch.Tensor  # −∂L_decor/∂anchor, ZHANG A.6 (Fig. 5c)


def unwrap(method):
    """The method inside a DistributedDataParallel wrapper (or the method itself)."""
    return getattr(method, "module", method)


def _pick(out, ref) -> torch.Tensor:
    kind, i = ref
    return getattr(out, kind)[i]


def _detached(t):
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    return t.float() if t.dtype in _LOW_PRECISION else t


def _leaf_record(out, ref, value: torch.Tensor):
    """A copy of ``out`` with every tensor detached and the ``ref`` slot replaced by ``value``."""
    fields = {}
    for kind in ("z", "p", "targets", "h"):
        seq = getattr(out, kind)
        if seq is not None:
            fields[kind] = [_detached(t) for t in seq]
    fields[ref[0]][ref[1]] = value
    fields["extra"] = {k: _detached(v) for k, v in out.extra.items()}
    return out.replace(**fields)


def _run_loss(method, rec) -> torch.Tensor:
    fn = getattr(method, "total_loss", None) or method.loss
    return fn(rec).loss


def anchor_gradient(method, out):
    """(G, anchor Z, frame): G = −∂L/∂Z·scale on the anchor's normalized vector Z (ZHANG eq. 3/4)."""
    method = unwrap(method)
    frame = method.gradient_frame(out)
    raw = _detached(_pick(out, frame.anchor))
    norm = raw.norm(dim=1, keepdim=True).clamp_min(_EPS)
    z = (raw / norm).requires_grad_(True)
    rec = _leaf_record(out, frame.anchor, norm * z)
    with torch.enable_grad(), treat_norm_as_constant():
        (g,) = torch.autograd.grad(_run_loss(method, rec), z, allow_unused=True)
    g = torch.zeros_like(z) if g is None else g
    return -g.to(torch.float64) * frame.scale, z.detach().to(torch.float64), frame


def decorrelation_gradient(anchor: torch.Tensor) -> torch.Tensor:
    """−∂L_cov/∂Z for ZHANG A.6's covariance term on the (global) batch of unit vectors ``anchor``."""
    z = anchor.detach().clone().requires_grad_(True)
    with torch.enable_grad(), treat_norm_as_constant():
        (g,) = torch.autograd.grad(covariance_term(gather(z)), z)
    return -g


def gradient_parts(method, out) -> GradientParts:
    """All per-sample tensors of the decomposition for this step's ``Forward`` record."""
    g, anchor, frame = anchor_gradient(method, out)
    basic = None if frame.basic is None else unit(_detached(_pick(out, frame.basic)))
    return GradientParts(g=g, anchor=anchor, basic=basic, decor=decorrelation_gradient(anchor))


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(dim=1).mean().sqrt()


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine along the last dim, 0 where either vector is 0."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(_EPS)


def summarize(parts: GradientParts) -> dict:
    """Scalars (0-dim tensors) of one decomposition; per-sample cosines are averaged over samples.

    grad_rms, ge_rms    root-mean-square norms of G and G_e
    oe_ratio, re_ratio  ‖o_e‖/rms(G_e) and rms(r_e)/rms(G_e): since the r_e sum to 0, their squares add to 1
    cos_oe_o            cos(o_e, o), o the anchor's center; oe_over_o = ‖o_e‖/‖o‖
    eta_star            η* = o_e·o/‖o‖², zero of the Fig. 5a η-scan
    cos_re_decor        mean_i cos(r_e,i, −∇L_decor,i);  cos_oe_decor: mean_i cos(o_e, −∇L_decor,i) (Fig. 5c)
    grad_basic_cos      mean_i cos(G_i, B_i), only when there is a basic part
    """
    g, basic = parts.g, parts.basic
    ge = g if basic is None else g - basic
    oe = ge.mean(dim=0)
    re = ge - oe
    o = parts.anchor.mean(dim=0)
    ge_rms = _rms(ge).clamp_min(_EPS)
    o_sq = o.pow(2).sum().clamp_min(_EPS)
    res = {
        "grad_has_basic": torch.tensor(float(basic is not None), dtype=g.dtype, device=g.device),
        "grad_rms": _rms(g),
        "ge_rms": _rms(ge),
        "oe_ratio": oe.norm() / ge_rms,
        "re_ratio": _rms(re) / ge_rms,
        "cos_oe_o": _cos(oe, o),
        "oe_over_o": oe.norm() / o_sq.sqrt(),
        "eta_star": (oe @ o) / o_sq,
        "cos_re_decor": _cos(re, parts.decor).mean(),
        "cos_oe_decor": _cos(oe.expand_as(parts.decor), parts.decor).mean(),
    }
    if basic is not None:
        res["grad_basic_cos"] = _cos(g, basic).mean()
    return res


def eta_scan(oe: torch.Tensor, o: torch.Tensor, etas: Sequence[float]) -> torch.Tensor:
    """ZHANG Fig. 5a: cos(o_e − η·o, o) for each η (o = o_p for SimSiam, o_z for Mirror SimSiam)."""
    eta = torch.as_tensor(list(etas), dtype=oe.dtype, device=oe.device)[:, None]
    return _cos(oe[None, :] - eta * o[None, :], o[None, :])


def eta_curve(cos_oe_o: float, oe_over_o: float, etas: Sequence[float]) -> list:
    """The η-scan rebuilt from the two logged scalars c = cos(o_e, o) and ρ = ‖o_e‖/‖o‖:
    cos(o_e − η·o, o) = (cρ − η)/√(ρ² − 2cρη + η²)."""
    c, rho = float(cos_oe_o), float(oe_over_o)
    out = []
    for eta in etas:
        den = (rho * rho - 2.0 * c * rho * eta + eta * eta) ** 0.5
        out.append((c * rho - eta) / den if den > _EPS else 0.0)
    return out


def zero_crossing(etas: Sequence[float], cosines: Sequence[float]) -> float:
    """η where a scanned curve first changes sign, by linear interpolation; NaN if it never does."""
    pts = list(zip([float(e) for e in etas], [float(c) for c in cosines]))
    for (e0, c0), (e1, c1) in zip(pts, pts[1:]):
        if c0 == 0.0:
            return e0
        if c0 * c1 < 0.0:
            return e0 + (e1 - e0) * c0 / (c0 - c1)
    return pts[-1][0] if pts and pts[-1][1] == 0.0 else float("nan")


def infonce_weights(za: torch.Tensor, zb: torch.Tensor, tau: float, same_view_negatives: bool = True) -> torch.Tensor:
    """λ of ZHANG §4 / A.7 for each anchor Z_a,k: a distribution over the candidates
    [Z_b,1 … Z_b,M, Z_a,1 … Z_a,M] (positive Z_0 = Z_b,k; anchor's own column 0), λ_i ∝ exp(Z_a·Z_i/τ).
    ``same_view_negatives=False`` keeps only the Z_b candidates (MoCo-style keys)."""
    a, b = unit(za), unit(zb)
    cand = torch.cat([b, a]) if same_view_negatives else b
    logits = a @ cand.T / tau
    keep = torch.ones_like(logits, dtype=torch.bool)
    if same_view_negatives:
        m = a.shape[0]
        idx = torch.arange(m, device=a.device)
        keep[idx, m + idx] = False
    logits = torch.where(keep, logits, torch.full_like(logits, -torch.inf))
    w = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    return w / w.sum(dim=1, keepdim=True)


def lambda_entropy(za: torch.Tensor, zb: torch.Tensor, tau: float, same_view_negatives: bool = True) -> torch.Tensor:
    """Mean over anchors of the entropy −Σ_i λ_i ln λ_i (nats) of :func:`infonce_weights` (ZHANG Fig. 7a)."""
    return torch.special.entr(infonce_weights(za, zb, tau, same_view_negatives)).sum(dim=1).mean()
