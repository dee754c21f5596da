"""BRIDGE (Liu et al. 2022, §4, eqs. 17–19): invariance + partitioned covariance-maintaining term, no stop-gradient.

Units of the two terms (the reason for ``inv_scale="mean"`` and the mean over partitions): the
paper's weights c_inv, c_cov (Tables 1–4) were measured with the authors' public code
(github.com/KJ-rc/bridging-the-gap, main.py), which differs from eqs. 17/19 read literally in two
constant factors:

* invariance: the code takes ``(W_p f¹ − f²)².mean()``, the mean over samples *and* the d dimensions,
  i.e. ‖W_pF¹ − F²‖²_F / d; eq. 17 written out sums over d. The covariance term of the code,
  ``mse(corr, WᵀW)·d``, is exactly eq. 17's (1/d)‖W_pᵀW_p − W_pF¹F¹ᵀW_pᵀ‖²_F.
* partitions: the code has no k; each GPU computes the covariance term on its local batch and
  DistributedDataParallel averages the gradients, so its k (= number of GPUs) partitions are
  *averaged*, where eq. 19 sums them.

Read literally, eq. 17 multiplies c_inv by d (2048 for the paper's projector) relative to the runs
that produced the tables. Then Table 3's "Cov + I-PRED" cell (c_inv = c_cov = 1, W_p = I, no STD)
cannot train: a constant unit vector costs (d − 1)/d per direction, while a representation spread
isotropically over r dimensions whose two views differ by variance v per dimension costs r·v + (d − r)/d
(sampling noise aside), less only if v < (r − 1)/(r·d) ≈ 1/d. In the code's units it costs r·v/d + (d − r)/d, less whenever
v < (r − 1)/r, so the cell trains, as the paper reports (62.6 %); see
``tests/test_losses_b.py::test_bridge_mean_scale_lets_cov_ipred_train``. §4.2's remark that "the
division by d makes the effective range of c_cov similar to c_inv" also holds only in these units: at
d = 2048 and n' = 256 samples per partition, the sampling noise of a decorrelated representation gives
‖W_pᵀW_p − W_pF_iF_iᵀW_pᵀ‖²_F ≈ d²/n' ≈ 16 000, i.e. ≈ d/n' = 8 after the division, next to an
invariance term of O(1) as a mean over elements but O(d) ≈ 10²–10³ as eq. 17's sum over d.
``inv_scale="sum"`` keeps eq. 17's literal form for comparison.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import bad_value
from .barlow import standardize
from .functional import gather

INV_SCALES = ("mean", "sum")


def predict(f: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rows p_i = W_p f_i (+ b); ``weight=None`` is the identity predictor I-PRED (BRIDGE §5.4)."""
    p = f if weight is None else f @ weight.T
    return p if bias is None else p + bias


def invariance_term(p: torch.Tensor, target: torch.Tensor, scale: str = "mean") -> torch.Tensor:
    """The invariance term of BRIDGE eq. 17 on rows p_i = W_p f¹_i and targets f²_i (n × d).

    ``scale="mean"`` (default, the authors' code): (1/(n·d)) Σ_i ‖p_i − f²_i‖² = ‖W_pF¹ − F²‖²_F / d.
    ``scale="sum"`` (eq. 17 literally, F = [f_1 … f_n]/√n): (1/n) Σ_i ‖p_i − f²_i‖² = ‖W_pF¹ − F²‖²_F.
    """
    sq = (p - target).pow(2)
    return sq.mean() if scale == "mean" else sq.sum(dim=1).mean()


def check_partitions(n: int, k: int) -> None:
    """BRIDGE §4.4 cuts the global batch of ``n`` into ``k`` equal partitions: ConfigError unless k divides n."""
    if k < 1 or n % k:
        raise bad_value("method.k", k, f"a divisor of the global batch size optim.batch_size={n}, e.g. "
                        f"{max((d for d in range(1, min(k, n) + 1) if n % d == 0), default=1)}")


def covariance_term(p: torch.Tensor, weight: Optional[torch.Tensor], k: int = 1) -> torch.Tensor:
    """(1/(k·d)) Σ_{i=1..k} ‖W_pᵀW_p − W_p F_i F_iᵀ W_pᵀ‖²_F: BRIDGE eq. 19 (eq. 17 for k = 1), with the
    k partition terms averaged as in the authors' code (module docstring) where eq. 19 sums them.

    ``p`` holds the rows W_p f_j of the whole batch (n × d). The batch is cut into k contiguous
    partitions of n' = n/k rows; F¹ = (1/√k)[F_1, …, F_k] with F = [f]/√n gives F_i = [f_j]_{j∈i}/√n',
    so W_p F_i F_iᵀ W_pᵀ = P_iᵀP_i / n'. With ``weight=None`` (I-PRED) W_pᵀW_p = I.
    """
    n, d = p.shape
    check_partitions(n, k)
    gram = torch.eye(d, dtype=p.dtype, device=p.device) if weight is None else weight.T @ weight
    parts = p.reshape(k, n // k, d)
    second_moments = parts.transpose(1, 2) @ parts / (n // k)  # k × d × d
    return (gram - second_moments).pow(2).sum() / (k * d)


def bridge_loss(z1: torch.Tensor, z2: torch.Tensor, weight: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None, c_inv: float = 25.0, c_cov: float = 1.0, k: int = 8,
                standardize_features: bool = True, stop_gradient: bool = False, symmetric: bool = True,
                inv_scale: str = "mean", eps: float = 1e-5, with_terms: bool = False):
    """BRIDGE eq. 19, summed over both directions F¹→F² and F²→F¹ (§4.2) when ``symmetric``:

        L = c_inv·inv(W_pF¹, F²) + c_cov·cov(W_pF¹)  (+ the 2→1 way),

    with ``inv`` = ‖W_pF¹ − F²‖²_F / d (``inv_scale="mean"``; ``"sum"``: without the 1/d) and
    ``cov`` = (1/(k·d)) Σ_i ‖W_pᵀW_p − W_p F_i¹F_i¹ᵀ W_pᵀ‖²_F, in the units of the authors' code
    (module docstring).

    ``z1``, ``z2`` are the projector outputs of this process; they are gathered to the global batch
    (rank order), standardized per dimension with eq. 18 (mean, unbiased σ; ``standardize_features``,
    "STD") and the k partitions are contiguous blocks of the global batch, so when k is a multiple
    of the world size every partition lies inside one rank's local batch (§4.4). ``stop_gradient``
    detaches the invariance target F² (Table 3 "StopGrad"). ``weight=None`` is I-PRED.
    Returns the loss, or ``(loss, {"inv", "cov"})`` with ``with_terms=True``.
    """
    if inv_scale not in INV_SCALES:
        raise bad_value("method.inv_scale", inv_scale, " or ".join(INV_SCALES))
    f1, f2 = gather(z1), gather(z2)
    if standardize_features:
        f1, f2 = standardize(f1, unbiased=True, eps=eps), standardize(f2, unbiased=True, eps=eps)
    p1, p2 = predict(f1, weight, bias), predict(f2, weight, bias)
    t1, t2 = (f1.detach(), f2.detach()) if stop_gradient else (f1, f2)
    inv = invariance_term(p1, t2, inv_scale)
    cov = covariance_term(p1, weight, k)
    if symmetric:
        inv = inv + invariance_term(p2, t1, inv_scale)
        cov = cov + covariance_term(p2, weight, k)
    loss = c_inv * inv + c_cov * cov
    if with_terms:
        return loss, {"inv": inv.detach(), "cov": cov.detach()}
    return loss
