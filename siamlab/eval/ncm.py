"""GEN's nearest-class-mean classifier and its Theorem 3 error bound.

GEN §4.1 assumes features on the sphere of radius r = √d: f = √d · z/‖z‖. The classifier (GEN
eq. 4) assigns a sample to the class whose mean feature μ_k is nearest in Euclidean distance.
Theorem 3 bounds its error rate by

    Er(f) ≤ [2/d²‖Λ − I_d‖² + 2ε⁴ + (K − d)/d²] / [(1 − Σ_i p_i²)(1 − 4ε + ε²)²]

with Λ = E[f fᵀ] (GEN §4.1, above Theorem 2; uncentred, so tr Λ = d), K latent classes with
probabilities p_i, and ε the radius of eq. 6: any two views of one latent class lie within rε of
each other. The ε-free part is L_bound = 2/d²‖Λ − I_d‖² + (K − d)/d² (GEN eq. 11); L_cor = ‖Λ − I_d‖²
(GEN eq. 8). Norms are Frobenius.

Reading of ε used here: eq. 6 literally, i.e. the largest distance between two samples of one class
divided by r, which on l2-normalized features is max ‖z_a/‖z_a‖ − z_b/‖z_b‖‖ over same-class pairs.
It makes the bound loose (often > 1, i.e. vacuous); pass ``eps`` to use another estimate.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import ConfigError
from ..losses.functional import l2n
from .knn import check_features

_GRAM_BUDGET = 1 << 24  # entries of a within-class Gram block held at once


def sphere_features(features: torch.Tensor) -> torch.Tensor:
    """f = √d · z/‖z‖ in float64: GEN §4.1's assumption ‖f(x)‖² = r² = d."""
    z = features.to(torch.float64)
    return math.sqrt(z.shape[1]) * l2n(z)


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """μ_k = mean of the features of class k (GEN eq. 4), [K, D]; rows of absent classes are NaN."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    return sums / counts[:, None]  # 0/0 = NaN marks a class without samples


@torch.no_grad()
def ncm_predict(
    train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int, metric: str = "euclidean"
) -> torch.Tensor:
    """Classes of ``test_f`` by GEN eq. 4 on sphere features; ``metric="cosine"`` ranks by cos(f, μ_k) instead."""
    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"ncm metric={metric!r} is not valid: expected euclidean or cosine.")
    mu = class_means(sphere_features(train_f), train_y, num_classes)
    f = sphere_features(test_f)
    if metric == "euclidean":
        score = -torch.cdist(f, mu.nan_to_num(0.0))
    else:
        score = l2n(f) @ l2n(mu.nan_to_num(0.0)).T
    score[:, mu.isnan().any(dim=1)] = -math.inf  # a class absent from training cannot be predicted
    return score.argmax(dim=1)


def ncm_accuracy(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    metric: str = "euclidean",
) -> float:
    """Top-1 accuracy (percent) of GEN's nearest-class-mean classifier (eq. 4), means from the train split."""
    check_features(train_f, train_y, test_f, test_y, num_classes)
    pred = ncm_predict(train_f, train_y, test_f, num_classes, metric)
    return 100.0 * float((pred == test_y.to(pred.device)).double().mean())


def second_moment(features: torch.Tensor) -> torch.Tensor:
    """Λ = E[f fᵀ] over the samples, f on the sphere of radius √d (GEN §4.1 / eq. 8)."""
    f = sphere_features(features)
    return f.T @ f / f.shape[0]


def l_cor(features: torch.Tensor) -> float:
    """L_cor = ‖Λ − I_d‖²_F (GEN eq. 8)."""
    lam = second_moment(features)
    return float(((lam - torch.eye(lam.shape[0], dtype=lam.dtype, device=lam.device)) ** 2).sum())


def l_bound_value(lcor: float, d: int, num_classes: int) -> float:
    """L_bound = 2/d² · L_cor + (K − d)/d² (GEN eq. 11)."""
    return 2.0 * lcor / d**2 + (num_classes - d) / d**2


def theorem3_value(lbound: float, eps: float, class_probs: torch.Tensor) -> float:
    """GEN Theorem 3: (L_bound + 2ε⁴) / ((1 − Σ p_i²)(1 − 4ε + ε²)²); inf where the denominator is 0."""
    denom = (1.0 - float((class_probs.double() ** 2).sum())) * (1.0 - 4.0 * eps + eps**2) ** 2
    return (lbound + 2.0 * eps**4) / denom if denom > 0 else math.inf


@torch.no_grad()
def class_diameter_eps(features: torch.Tensor, labels: torch.Tensor) -> float:
    """ε of GEN eq. 6: the largest same-class distance ‖f_a − f_b‖ divided by r = √d."""
    z = l2n(features.to(torch.float64))
    min_cos = 1.0
    for c in labels.unique():
        zc = z[labels == c]
        chunk = max(1, _GRAM_BUDGET // zc.shape[0])
        for i in range(0, zc.shape[0], chunk):
            min_cos = min(min_cos, float((zc[i:i + chunk] @ zc.T).min()))
    return math.sqrt(max(0.0, 2.0 - 2.0 * min_cos))  # ‖a − b‖² = 2 − 2 a·b for unit a, b


def gen_bound(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, eps: Optional[float] = None
) -> dict:
    """GEN's error-bound quantities on one split's features.

    Returns ``d``, ``l_cor`` (eq. 8), ``l_bound`` (eq. 11), ``eps`` (eq. 6; estimated by
    :func:`class_diameter_eps` unless given), ``class_mass`` = 1 − Σ p_i² with p_i the class
    frequencies, and ``theorem3``: the Theorem 3 upper bound on the NCM error rate as a fraction
    (values ≥ 1 are vacuous).
    """
    if eps is not None and eps < 0:
        raise ConfigError(f"eps={eps!r} is not valid: expected a number >= 0 (or None to estimate it).")
    d = features.shape[1]
    probs = torch.bincount(labels.cpu(), minlength=num_classes).double() / labels.shape[0]
    lcor = l_cor(features)
    lbound = l_bound_value(lcor, d, num_classes)
    eps = class_diameter_eps(features, labels) if eps is None else float(eps)
    return {
        "d": float(d),
        "l_cor": lcor,
        "l_bound": lbound,
        "eps": eps,
        "class_mass": 1.0 - float((probs**2).sum()),
        "theorem3": theorem3_value(lbound, eps, probs),
    }
