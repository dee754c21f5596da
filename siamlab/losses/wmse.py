"""W-MSE (Ermolov et al. 2021, §3): MSE between positives after whitening the batch of embeddings."""
from __future__ import annotations

import itertools

import torch

from ..errors import bad_value
from .functional import gather, l2n

WHITENINGS = ("cholesky", "zca")


def whitening_matrix(cov: torch.Tensor, kind: str = "cholesky") -> torch.Tensor:
    """W with W Σ Wᵀ = I for a covariance Σ (D × D).

    cholesky: Σ = L Lᵀ, W = L⁻¹ (lower triangular; Ermolov et al. and their code);
    zca:      W = Σ^{-1/2} = U diag(λ^{-1/2}) Uᵀ (symmetric).
    """
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    if kind == "cholesky":
        return torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye, upper=False)
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag(evals.rsqrt()) @ evecs.T


def whiten(x: torch.Tensor, eps: float = 0.0, kind: str = "cholesky") -> torch.Tensor:
    """Rows of ``x`` (N × D) centred and whitened: the result has unbiased covariance I.

    Σ = (x − x̄)ᵀ(x − x̄)/(N − 1), shrunk to (1 − eps) Σ + eps I as in the official ``Whitening2d``.
    """
    xc = x - x.mean(dim=0)
    cov = xc.T @ xc / (x.shape[0] - 1)
    if eps:
        cov = (1 - eps) * cov + eps * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return xc @ whitening_matrix(cov, kind).T


def _pair_distance(a: torch.Tensor, b: torch.Tensor, normalize: bool) -> torch.Tensor:
    if normalize:  # ‖a/‖a‖ − b/‖b‖‖² = 2 − 2 cos(a, b), averaged over samples
        return (l2n(a) - l2n(b)).pow(2).sum(dim=1).mean()
    return (a - b).pow(2).mean()  # F.mse_loss


def check_sub_batch(n: int, w_size: int, dim: int, eps: float) -> int:
    """The sub-batch size for a global batch of ``n``; ConfigError if it does not divide ``n`` or cannot be whitened."""
    size = w_size or n
    if n % size:
        raise bad_value("method.w_size", w_size, f"a divisor of the global batch size {n} (0 = the whole batch)")
    if size <= dim and not eps:
        raise bad_value("method.w_size", w_size, f"a sub-batch larger than the embedding dimension {dim} "
                        "(lower model.proj_out, raise w_size or set method.w_eps > 0)")
    return size


def wmse_loss(zs: list, w_size: int = 0, w_iter: int = 1, eps: float = 0.0, kind: str = "cholesky",
              normalize: bool = True, seed: int = 0) -> torch.Tensor:
    """W-MSE loss over all pairs of the views ``zs`` (each N × D, gathered to the global batch).

    ``w_iter`` times: a random permutation (generator seeded with ``seed``, so the loss is a pure
    function of its inputs and equal on every rank) splits the batch into sub-batches of ``w_size``
    (0 = whole batch); every view is whitened separately within every sub-batch (:func:`whiten`);
    the loss is the mean over pairs of views of ‖ŵ_i − ŵ_j‖² with l2-normalized ŵ (``normalize``,
    the paper's default) or the element-wise MSE; the official code's averaging over ``w_iter``
    and pairs is kept.
    """
    zs = [gather(z) for z in zs]
    n, dim = zs[0].shape
    size = check_sub_batch(n, w_size, dim, eps)
    device = zs[0].device
    gen = torch.Generator(device=device).manual_seed(int(seed))  # drawn where it is used: no host copy
    pairs = list(itertools.combinations(range(len(zs)), 2))
    total = 0.0
    for _ in range(w_iter):
        for idx in torch.randperm(n, generator=gen, device=device).view(-1, size):
            white = [whiten(z[idx], eps, kind) for z in zs]
            chunk = sum(_pair_distance(white[i], white[j], normalize) for i, j in pairs)
            total = total + chunk * (size / n)
    return total / (w_iter * len(pairs))
