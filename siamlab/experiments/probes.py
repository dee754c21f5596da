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

``bias`` (ZHANG Table 6): the predictor's last bias at initialization b_0 (the network rebuilt with the
run's seed) and at the end b, and the center vector o_z = E[Z] (ZHANG §3: "an average of Z over the whole
representation space"; its mini-batch estimate is what the live diagnostic uses, and with batch 128 and a
BN-centered projector that estimate is mostly sampling noise) — the mean of the l2-normalized predictor
inputs over augmented views of every training image, the network in training mode as during training;
scalars: ``bias_center_learned`` = cos(b − b_0, o) (what training put into the bias),
``bias_center_end`` = cos(b, o) and ``bias_init_share`` = cos(b, b_0). PyTorch initializes an FC bias
uniformly in ±1/√fan_in, so the MLP's last bias starts with a norm comparable to what training adds and
weight decay removes it only over far more steps than a smoke run has; the single bias starts at 0, so its
learned part is the bias itself.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

SHOW = 32  # dimensions shown in heatmaps


def _build(run_dir: Path, seed: int, with_train: bool = False):
    from ..engine.build import build_run, load_run_config, seed_everything

    cfg = load_run_config(str(run_dir))
    seed_everything(seed)
    train_ds, test_ds, augment, method = build_run(cfg, torch.device("cpu"))
    return (method, test_ds, augment, train_ds) if with_train else (method, test_ds, augment)


@torch.no_grad()
def training_center(method, train_ds, augment, batch: int = 256) -> torch.Tensor:
    """o_z = E[Z]: the mean of the l2-normalized projector outputs (the predictor's input) over one augmented
    view of every training sample, in training mode (batch statistics in BN, as during training). A streamed
    dataset (no ``x``) gives its clean squares (``clean_batches``), the pixels an in-memory copy would hold;
    their views are cropped from those squares rather than at decode time, which leaves E[Z] unchanged."""
    from ..analysis.metrics import unit
    from ..eval.features import image_batches

    was = method.training
    method.train()
    total, n = None, 0
    for i, x in zip(range(0, len(train_ds), batch), image_batches(train_ds, 0, len(train_ds), batch)):
        idx = torch.arange(i, i + len(x))
        if len(idx) < 2:
            continue
        _, z = method.encoder(augment.views(x, idx, 1)[0])
        s = unit(z).sum(dim=0)
        total, n = (s if total is None else total + s), n + len(idx)
    method.train(was)
    return total / max(n, 1)


def _load_trained(method, run_dir: Path) -> bool:
    """Load the run's ``last.pt`` into ``method`` (False when the run saved none) through the engine's reader
    (``torch.load(weights_only=True)``); a corrupt checkpoint or one of another network is one sentence."""
    from ..engine.build import load_run_config
    from ..engine.checkpoint import check_fits, read

    ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return False
    what = f"cannot probe {run_dir} (delete that folder and run the same command again to train it anew)"
    state = read(ckpt, "cpu", what)
    check_fits(state, method, load_run_config(str(run_dir)), ckpt, what)
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


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def bias_probe(run_dir: Path, seed: int) -> tuple[dict, dict]:
    """ZHANG Table 6 on the learned part of the predictor's last bias (module docstring)."""
    method, _, augment, train_ds = _build(run_dir, seed, with_train=True)
    pred = getattr(method, "predictor", None)
    b0 = getattr(pred, "last_bias", None) if pred is not None else None
    if b0 is None:
        return {}, {}
    b0 = b0.detach().clone()
    if not _load_trained(method, run_dir):
        return {}, {}
    b1 = method.predictor.last_bias.detach().clone()
    o = training_center(method, train_ds, augment)
    learned = b1 - b0
    return ({"bias_center_learned": _cos(learned, o), "bias_center_end": _cos(b1, o), "bias_init_share": _cos(b1, b0)},
            {"bias_init": b0.numpy(), "bias_end": b1.numpy(), "center": o.numpy()})


PROBES = {"correlation": correlation_probe, "bias": bias_probe, "predictor": predictor_probe, "prototypes": prototypes_probe}


def run_probe(name: str, results, out_dir: Path) -> None:
    """Fill ``rec.probe`` of every finished run and save seed 0's arrays in ``probe/<arm>-s0.npz``."""
    from ..report.files import write_result
    from ..text import slug

    for rec in results.records:
        if not rec.ran or rec.status == "diverged":
            continue
        scalars, arrays = PROBES[name](Path(rec.run_dir), rec.seed)
        rec.probe.update(scalars)
        if arrays and rec.seed == 0:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            write_result(out_dir / "probe" / f"{slug(rec.label)}-s0.npz", buf.getbuffer())
