"""What the Monitor says about itself so that its numbers cannot be misread (issue 22, item 2).

* :func:`hidden_normalization`: the gradient decomposition (ZHANG §3.2) takes −∂L/∂Z on the anchor's
  normalized vector Z as a *free* vector, by re-running ``loss_fn`` inside
  :func:`siamlab.losses.functional.treat_norm_as_constant`, where :func:`siamlab.l2n` divides by a
  constant norm. A loss that normalizes some other way (``F.normalize``, ``F.cosine_similarity``, lightly's
  ``NegativeCosineSimilarity``) differentiates through the norm, and autograd returns only the part of
  the gradient tangent to the sphere: G·Z = 0 for every sample, to rounding. That is what is detected —
  a loss that does not normalize at all (Barlow Twins, VICReg) keeps a radial part and is not flagged.
* :func:`absent_diagnostics`: which live diagnostics a monitored loop does not get, and why (no
  projector ending in a BatchNorm → no center norm at the final BN; no predictor → no predictor
  diagnostics; no ``p`` → no diagnostics on P; ...).
"""
from __future__ import annotations

from typing import Optional

TANGENT_TOL = 1e-5  # |cos(G_i, Z_i)| below this for every sample: no radial part at all


def tangent_only(method, out) -> Optional[bool]:
    """True when the gradient of ``method.total_loss`` on the anchor's normalized vector is tangent to the sphere
    for every sample (the loss normalizes the anchor where the Monitor cannot see it), False when it has a
    radial part, None while it is zero (nothing to tell yet)."""
    from ..analysis.gradients import anchor_gradient

    g, z, _ = anchor_gradient(method, out)
    norms = g.norm(dim=1)
    if not bool((norms > 0).any()):
        return None
    radial = (g * z).sum(dim=1).abs()[norms > 0] / norms[norms > 0]
    return float(radial.max()) < TANGENT_TOL


def hidden_normalization_text(anchor: tuple) -> str:
    """The one warning for a loss whose normalization of the anchor ``(kind, index)`` the Monitor does not see."""
    kind, i = anchor
    return (f"siamlab.Monitor: loss_fn normalizes {kind}[{i}] without siamlab.l2n (F.normalize, F.cosine_similarity and "
            "lightly's NegativeCosineSimilarity normalize inside), so the gradient decomposition sees only the part of "
            "the gradient tangent to the sphere and grad_rms, eta_star and cos_* are not ZHANG §3.2's; normalize with "
            "siamlab.l2n in loss_fn (a drop-in for F.normalize), or hand Monitor.log the normalized tensors and a loss_fn that "
            "does not normalize them again.")


def _predictor_reasons(pred, d: int) -> dict:
    if pred is None:
        why = "no predictor= was given to the Monitor"
        return {"bias_center_cos": why, "wp_symmetry, wp_diag_share, wp_fft_rel": why}
    out = {}
    bias = pred.last_bias
    if bias is None or tuple(bias.shape) != (d,):
        out["bias_center_cos"] = (f"the predictor's last Linear has no bias of size {d}" if bias is None
                                  else f"the predictor's last bias has shape {tuple(bias.shape)}, not ({d},)")
    w = pred.linear_weight
    if w is None or tuple(w.shape) != (d, d):
        out["wp_symmetry, wp_diag_share, wp_fft_rel"] = ("the predictor is not only Linear layers (p = W_p z + b)" if w is None
                                                         else f"the predictor's W_p is {tuple(w.shape)}, not {d}x{d}")
    return out


def _bn_reason(projector) -> Optional[str]:
    from torch import nn

    if projector is None:
        return "no projector= was given to the Monitor"
    if getattr(projector, "final_bn", None) is not None:
        return None
    if isinstance(projector, nn.Sequential) and len(projector):
        if isinstance(projector[-1], nn.modules.batchnorm._BatchNorm):
            return None
        return f"the projector ends in {type(projector[-1]).__name__}, not a BatchNorm (CENTER Fig. 5 needs a final BN)"
    return f"the projector ({type(projector).__name__}) is not an nn.Sequential ending in a BatchNorm"


def absent_diagnostics(method, out, vals: dict, *, gradients: bool, temperature) -> dict:
    """``{diagnostics: why}`` for the live diagnostics this monitored loop does not log, given its
    ``_LoopMethod`` (``method``), one step's ``Forward`` record ``out`` and the values logged for it."""
    d = int(out.z[0].shape[1])
    absent = {}
    if out.p is None:
        absent["p_std_scaled, p_m_o, p_m_r, loss_on_p"] = "no predictor outputs p were passed to Monitor.log"
    if "center_pre_bn" not in vals:
        absent["center_pre_bn, center_post_bn"] = (_bn_reason(method.encoder.projector)
                                                   or "the projector's final BatchNorm did not run in training mode on z[0]")
    absent.update(_predictor_reasons(method.predictor, d))
    if method._loss_fn is None or not gradients:
        absent["gradient decomposition (grad_rms, eta_star, cos_*)"] = ("no loss_fn= was given to the Monitor"
                                                                        if method._loss_fn is None else "gradients=False")
    elif "grad_basic_cos" not in vals:
        absent["grad_basic_cos"] = "the gradient frame has no basic part (GradFrame.basic is None)"
    if "lambda_entropy" not in vals:
        absent["lambda_entropy"] = ("no temperature= was given to the Monitor" if temperature is None
                                    else "the gradient frame has no basic part (InfoNCE's positive)")
    return absent


def absent_text(absent: dict) -> str:
    """The absent diagnostics as one sentence: "a (why); b (why)"."""
    return "siamlab.Monitor does not log " + "; ".join(f"{k} ({why})" for k, why in absent.items()) + "."
