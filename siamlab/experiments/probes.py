"""Post-run probes: quantities read from a trained network rather than from its metrics log.

``correlation`` (GEN App. E.3 / Fig. 5): Λ = (d/N)·Σ_i Z_i Z_iᵀ of l2-normalized projector features
of the clean test images (GEN eq. 8 with f = √d·Z), for the random-init network (rebuilt with the
run's seed, hence the same initial weights) and the trained one; scalar: mean |off-diagonal|.

``predictor`` (BRIDGE Figs. 3–4): the linear predictor W_p at initialization and at the end, and its
learned part ΔW = W_p − W_p(0). BRIDGE Thm 3.1 gives W_pᵀW_p = F¹F¹ᵀ + e^{−2ηt}C with C set by the
initial weights: with the small weight decay of a short run the random W_p(0) stays in W_p, so the
mechanism (W_p → cI) shows in ΔW. Scalars, each for ΔW (``asym``, ``diag_share``, ``eig_clustered``)
and for W_p at the end and at init (``*_w``, ``*_init``): asymmetry ‖A − Aᵀ‖_F/‖A‖_F (≈ √2 for a
matrix of i.i.d. entries, 0 for a symmetric one), diagonal share ‖diag A‖²/‖A‖²_F (≈ 1/d unstructured,
1 diagonal), and the fraction of the eigenvalues of (A + Aᵀ)/2 in the two clusters of BRIDGE Fig. 4b:
within 30% of c (the median of the eigenvalues ≥ 0.3·λ_max) or below 0.3·c in magnitude.

``prototypes`` (CENTER §3.4 / Fig. 6): ‖mean of the unit prototypes‖ of a SwAV run, the center that K
fixed random prototypes have themselves (≈ 1/√K).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SHOW = 32  # dimensions shown in heatmaps


def _build(run_dir: Path, seed: int):
    from ..engine.trainer import build_run, load_run_config, seed_everything

    cfg = load_run_config(str(run_dir))
    seed_everything(seed)
    _, test_ds, augment, method = build_run(cfg, torch.device("cpu"))
    return method, test_ds, augment


def _load_trained(method, run_dir: Path) -> bool:
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return False
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    method.load_state_dict(state["method"])
    return True


def gen_lambda(z: torch.Tensor) -> torch.Tensor:
    """GEN Λ = E[f fᵀ] with f = √d·z/‖z‖: (d/N)·ZᵀZ, float64."""
    zz = z.double() / z.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    return zz.shape[1] * zz.T @ zz / zz.shape[0]


def mean_abs_offdiag(m: torch.Tensor) -> float:
    d = m.shape[0]
    off = m - torch.diag(torch.diagonal(m))
    return float(off.abs().sum() / (d * d - d))


def correlation_probe(run_dir: Path, seed: int) -> tuple[dict, dict]:
    from ..eval.features import extract_features

    method, test_ds, augment = _build(run_dir, seed)
    init = gen_lambda(extract_features(method, test_ds, augment, 512, torch.device("cpu"))["projector"])
    if not _load_trained(method, run_dir):
        return {"offdiag_abs_init": mean_abs_offdiag(init)}, {}
    final = gen_lambda(extract_features(method, test_ds, augment, 512, torch.device("cpu"))["projector"])
    scalars = {"offdiag_abs": mean_abs_offdiag(final), "offdiag_abs_init": mean_abs_offdiag(init)}
    return scalars, {"random_init": init[:SHOW, :SHOW].numpy(), "trained": final[:SHOW, :SHOW].numpy()}


def eigen_clustered(eig: np.ndarray) -> float:
    """Fraction of eigenvalues within 30% of c or below 0.3·c (c: median of those ≥ 0.3·λ_max)."""
    top = eig[eig >= 0.3 * eig.max()]
    c = float(np.median(top))
    inside = (np.abs(eig - c) <= 0.3 * c) | (np.abs(eig) <= 0.3 * c)
    return float(inside.mean())


def matrix_stats(w: torch.Tensor) -> dict:
    w = w.double()
    fro = float(w.norm()) or 1.0
    return {"asym": float((w - w.T).norm()) / fro, "diag_share": float(torch.diagonal(w).pow(2).sum()) / fro**2}


def sym_eigenvalues(w: torch.Tensor) -> np.ndarray:
    """Eigenvalues of the symmetric part (W + Wᵀ)/2, largest first."""
    return torch.linalg.eigvalsh(((w + w.T) / 2).double()).flip(0).numpy()


def predictor_probe(run_dir: Path, seed: int) -> tuple[dict, dict]:
    method, _, _ = _build(run_dir, seed)
    pred = getattr(method, "predictor", None)
    w0 = getattr(pred, "linear_weight", None)
    if w0 is None:
        return {}, {}
    w0 = w0.detach().clone()
    if not _load_trained(method, run_dir):
        return {f"{k}_init": v for k, v in matrix_stats(w0).items()}, {}
    w1 = method.predictor.linear_weight.detach().clone()
    dw = w1 - w0
    eig, eig_dw = sym_eigenvalues(w1), sym_eigenvalues(dw)
    scalars = {**matrix_stats(dw), "eig_clustered": eigen_clustered(eig_dw),
               **{f"{k}_w": v for k, v in matrix_stats(w1).items()}, "eig_clustered_w": eigen_clustered(eig),
               **{f"{k}_init": v for k, v in matrix_stats(w0).items()}}
    arrays = {"init": w0[:SHOW, :SHOW].numpy(), "final": w1[:SHOW, :SHOW].numpy(), "learned": dw[:SHOW, :SHOW].numpy(),
              "eigenvalues": eig, "eigenvalues_init": sym_eigenvalues(w0), "eigenvalues_learned": eig_dw}
    return scalars, arrays


def prototypes_probe(run_dir: Path, seed: int) -> tuple[dict, dict]:
    """‖mean of the unit prototypes‖ of a trained SwAV run (CENTER §3.4: zero by design for uniformly drawn
    prototypes, ≈ 1/√K for K of them)."""
    method, _, _ = _build(run_dir, seed)
    if getattr(method, "prototypes", None) is None or not _load_trained(method, run_dir):
        return {}, {}
    c = method.prototypes.detach().double()
    return {"proto_center": float((c / c.norm(dim=1, keepdim=True)).mean(dim=0).norm())}, {}


PROBES = {"correlation": correlation_probe, "predictor": predictor_probe, "prototypes": prototypes_probe}


def run_probe(name: str, results, out_dir: Path) -> None:
    """Fill ``rec.probe`` of every finished run and save seed 0's arrays in ``probe/<arm>-s0.npz``."""
    from .runner import slug

    (out_dir / "probe").mkdir(exist_ok=True)
    for rec in results.records:
        if not rec.ran or rec.status == "diverged":
            continue
        scalars, arrays = PROBES[name](Path(rec.run_dir), rec.seed)
        rec.probe.update(scalars)
        if arrays and rec.seed == 0:
            np.savez(out_dir / "probe" / f"{slug(rec.label)}-s0.npz", **arrays)
