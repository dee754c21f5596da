"""De-correlation regularizer of ZHANG A.6 (Algorithm 6) and the covariance penalty it shares with VICReg."""
from __future__ import annotations

import torch

from .functional import gather, l2n


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of the square matrix ``m`` as a flat vector, row by row (ZHANG Alg. 6's
    ``cov[~diag]``). Without a boolean mask, whose indexing would wait for the GPU: in the flattened
    matrix the diagonal entries sit every d + 1 places, so dropping the last entry and viewing the rest
    as (d − 1) rows of d + 1 puts one diagonal entry at the start of every row."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def covariance_penalty(x: torch.Tensor) -> torch.Tensor:
    """Σ_{i≠j} Cov_ij² / D with Cov = (x − mean)ᵀ(x − mean) / (N − 1) over the rows of ``x`` (N × D).

    This is ZHANG Alg. 6 line by line, and also VICReg's covariance term c(Z) (Bardes et al. 2022,
    eqs. 3–4). It uses ``x`` as given: callers gather / normalize first.
    """
    n, d = x.shape
    xc = x - x.mean(dim=0)
    cov = xc.T @ xc / (n - 1)
    return off_diagonal(cov).pow(2).sum() / d


def decorrelation_loss(z: torch.Tensor) -> torch.Tensor:
    """ZHANG A.6 de-correlation loss on the l2-normalized representation Z = z/‖z‖ of the global batch.

    L = Σ_{i≠j} Cov(Z)_ij² / D, Cov(Z) = (Z − Z̄)ᵀ(Z − Z̄)/(N − 1) (Algorithm 6). ``z`` is the raw
    projector output of this process; it is gathered (gradient-carrying) and normalized with ``l2n``.
    """
    return covariance_penalty(l2n(gather(z)))
