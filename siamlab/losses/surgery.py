"""Gradient surgery: cosine losses written as a pull towards a stop-gradient *target* (ZHANG §3.3–3.4, §4).

For a loss −Z_a·sg(T) the negative gradient on the normalized anchor Z_a is T itself (per sample, up
to the batch mean). ZHANG splits T into a basic part B and an extra part G_e = T − B (§3.2), and G_e
into its batch center o_e = mean(G_e) and residual r_e = G_e − o_e. The transforms below rebuild the
target with one part removed (Tables 3 and 4); :func:`target_loss` turns any target into a loss.

All inputs are per-sample rows ``[M, d]``; batch means run over the global batch (:func:`gather`).
Targets are built from detached tensors: nothing here carries gradient except the anchor in
:func:`target_loss`.
"""
from __future__ import annotations

import torch

from .functional import gather, l2n

KEEP = ("both", "o_e", "r_e", "none")


def batch_center(x: torch.Tensor) -> torch.Tensor:
    """o = (1/M) Σ_m x_m over the global batch, shape [1, d] (ZHANG §3 "center vector")."""
    return gather(x).mean(dim=0, keepdim=True)


def extra_parts(target: torch.Tensor, basic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(o_e, r_e) of G_e = T − B: o_e its batch center ([1, d]), r_e = G_e − o_e ([M, d]) (ZHANG §3.2)."""
    g_e = target - basic
    o_e = batch_center(g_e)
    return o_e, g_e - o_e


def remove_center(target: torch.Tensor, basic: torch.Tensor) -> torch.Tensor:
    """B + r_e: the target with o_e removed from its extra gradient (ZHANG Table 3/4, "removing o_e")."""
    _, r_e = extra_parts(target, basic)
    return basic + r_e


def remove_residual(target: torch.Tensor, basic: torch.Tensor) -> torch.Tensor:
    """B + o_e: the target with r_e removed from its extra gradient (ZHANG Table 3/4, "removing r_e")."""
    o_e, _ = extra_parts(target, basic)
    return basic + o_e.expand_as(basic)


def remove_both(target: torch.Tensor, basic: torch.Tensor) -> torch.Tensor:
    """B: the basic gradient alone, G_e removed entirely (ZHANG Table 4, last row)."""
    return basic.clone()


def surgery_target(target: torch.Tensor, basic: torch.Tensor, keep: str) -> torch.Tensor:
    """The target keeping ``keep`` of G_e: "both" → T, "o_e" → B + o_e, "r_e" → B + r_e, "none" → B."""
    if keep == "both":
        return target
    if keep == "o_e":
        return remove_residual(target, basic)
    if keep == "r_e":
        return remove_center(target, basic)
    if keep == "none":
        return remove_both(target, basic)
    raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")


def target_loss(anchor: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−mean_i (anchor_i/‖anchor_i‖) · sg(target_i): the target is used as is, not normalized.

    −∂L/∂Z_a = target / M per sample (ZHANG Table 3's L = −Z_a·sg(Z_b + G_e)).
    """
    return -(l2n(anchor) * target.detach()).sum(dim=-1).mean()


# --- InfoNCE (ZHANG §4, A.7 eq. 6) -------------------------------------------------------------

def infonce_weights(anchor_n: torch.Tensor, cands_n: torch.Tensor, tau: float, offset: int) -> torch.Tensor:
    """λ_ki = softmax_i(Z_a^k · C_i / τ) over the candidates C, excluding the anchor itself, which sits
    at row ``offset + k`` of C (ZHANG A.7: λ_i, with the positive Z_0 = Z_b among the candidates)."""
    logits = anchor_n @ cands_n.T / tau
    rows = torch.arange(anchor_n.shape[0], device=anchor_n.device)
    is_self = (rows + offset)[:, None] == torch.arange(cands_n.shape[0], device=anchor_n.device)
    return torch.softmax(logits.masked_fill(is_self, float("-inf")), dim=1)


def infonce_target(anchors: torch.Tensor, positives: torch.Tensor, cands: torch.Tensor, self_offset: int,
                   tau: float, keep: str) -> torch.Tensor:
    """InfoNCE's negative gradient on the anchors, times τ, with parts of G_e removed (ZHANG §4, A.7 eq. 6).

    −τ ∂L/∂Z_a = Z_b + G_e with G_e = −Σ_i λ_i Z_i = o_e + r_e, where (ZHANG §4) o_e = −o_z is the
    negative center of the candidates and r_e = −Σ_i λ_i r_i = −(Σ_i λ_i Z_i − o_z) (since Σ λ_i = 1).
    Unlike :func:`extra_parts`, this o_e is ZHANG's per-anchor split, not the batch mean of G_e.

    anchors, positives: normalized local rows [M, d]; cands: all normalized candidates [C, d]
    (positives included); the anchor k itself is row ``self_offset + k`` of cands and is excluded.
    """
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    o_z = cands.mean(dim=0, keepdim=True)
    weighted = infonce_weights(anchors, cands, tau, self_offset) @ cands
    extra = {"both": -weighted, "o_e": -o_z.expand_as(positives), "r_e": o_z - weighted,
             "none": torch.zeros_like(positives)}[keep]
    return positives + extra


def infonce_surgery_loss(za: torch.Tensor, zb: torch.Tensor, tau: float, keep: str) -> torch.Tensor:
    """Symmetric InfoNCE surgery loss −(1/2τ) mean[Z_a·sg(T_a) + Z_b·sg(T_b)] (ZHANG §4, Fig. 6).

    The candidates of every anchor are both views of the global batch except the anchor itself (2M−1,
    the positive among them, as in SimCLR). With keep="both" the gradient on each anchor equals
    InfoNCE's anchor-side gradient (A.7 eq. 6); keep="o_e" is "InfoNCE without r_e".
    """
    from ..collectives import rank  # where the local rows sit in the gathered batch

    with torch.no_grad():
        na, nb = l2n(za.detach()), l2n(zb.detach())
        ga, gb = gather(na), gather(nb)
        cands = torch.cat([ga, gb])
        start = rank() * za.shape[0]
        ta = infonce_target(na, nb, cands, start, tau, keep)
        tb = infonce_target(nb, na, cands, ga.shape[0] + start, tau, keep)
    return 0.5 * (target_loss(za, ta) + target_loss(zb, tb)) / tau


# --- Conjecture 1 (ZHANG §3.1, Fig. 4) ---------------------------------------------------------

def center_target(z: torch.Tensor) -> torch.Tensor:
    """o_z = batch mean of Z, per row: the target of −Z_a·sg(o_z) (ZHANG §3.1, Conjecture 1)."""
    zn = l2n(z.detach())
    return batch_center(zn).expand_as(zn)


def residual_target(z: torch.Tensor) -> torch.Tensor:
    """r_a = Z_a − o_z: the target of −Z_a·sg(Z_a − o_z) (ZHANG §3.1, Conjecture 1)."""
    zn = l2n(z.detach())
    return zn - batch_center(zn)
