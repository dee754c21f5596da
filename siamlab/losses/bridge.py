"""BRIDGE (Liu et al. 2022, §4, eqs. 17–19): invariance + partitioned covariance-maintaining term, no stop-gradient."""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import bad_value
from .barlow import standardize
from .functional import gather


def predict(f: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rows p_i = W_p f_i (+ b); ``weight=None`` is the identity predictor I-PRED (BRIDGE §5.4)."""
    p = f if weight is None else f @ weight.T
    return p if bias is None else p + bias


def invariance_term(p: torch.Tensor, target: torch.Tensor, scale: str = "paper") -> torch.Tensor:
    """‖W_p F¹ − F²‖²_F with F = [f_1 … f_n]/√n (BRIDGE eq. 5 / 17), i.e. the per-sample squared
    distance averaged over the batch (``scale="paper"``), or the authors' code: mean over samples
    *and* dimensions (``scale="code"``, ``(p − t)².mean()``), which is the paper's value / d."""
    sq = (p - target).pow(2)
    return sq.sum(dim=1).mean() if scale == "paper" else sq.mean()


def check_partitions(n: int, k: int) -> None:
    """BRIDGE §4.4 cuts the global batch of ``n`` into ``k`` equal partitions: ConfigError unless k divides n."""
    if k < 1 or n % k:
        raise bad_value("method.k", k, f"a divisor of the global batch size optim.batch_size={n}, e.g. "
                        f"{max((d for d in range(1, min(k, n) + 1) if n % d == 0), default=1)}")


def covariance_term(p: torch.Tensor, weight: Optional[torch.Tensor], k: int = 1) -> torch.Tensor:
    """(1/d) Σ_{i=1..k} ‖W_pᵀW_p − W_p F_i F_iᵀ W_pᵀ‖²_F (BRIDGE eq. 19; eq. 17 for k = 1).

    ``p`` holds the rows W_p f_j of the whole batch (n × d). The batch is cut into k contiguous
    partitions of n' = n/k rows; F¹ = (1/√k)[F_1, …, F_k] with F = [f]/√n gives F_i = [f_j]_{j∈i}/√n',
    so W_p F_i F_iᵀ W_pᵀ = P_iᵀP_i / n'. With ``weight=None`` (I-PRED) W_pᵀW_p = I.
    """
    n, d = p.shape
    check_partitions(n, k)
    gram = torch.eye(d, dtype=p.dtype, device=p.device) if weight is None else weight.T @ weight
    parts = p.reshape(k, n // k, d)
    second_moments = parts.transpose(1, 2) @ parts / (n // k)  # k × d × d
    return (gram - second_moments).pow(2).sum() / d


def bridge_loss(z1: torch.Tensor, z2: torch.Tensor, weight: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None, c_inv: float = 25.0, c_cov: float = 1.0, k: int = 8,
                standardize_features: bool = True, stop_gradient: bool = False, symmetric: bool = True,
                inv_scale: str = "paper", eps: float = 1e-5, with_terms: bool = False):
    """BRIDGE eq. 19, summed over both directions F¹→F² and F²→F¹ (§4.2) when ``symmetric``:

        L = c_inv ‖W_pF¹ − F²‖²_F + (c_cov/d) Σ_i ‖W_pᵀW_p − W_p F_i¹F_i¹ᵀ W_pᵀ‖²_F  (+ the 2→1 way).

    ``z1``, ``z2`` are the projector outputs of this process; they are gathered to the global batch
    (rank order), standardized per dimension with eq. 18 (mean, unbiased σ; ``standardize_features``,
    "STD") and the k partitions are contiguous blocks of the global batch, so when k is a multiple
    of the world size every partition lies inside one rank's local batch (§4.4). ``stop_gradient``
    detaches the invariance target F² (Table 3 "StopGrad"). ``weight=None`` is I-PRED.
    Returns the loss, or ``(loss, {"inv", "cov"})`` with ``with_terms=True``.
    """
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
