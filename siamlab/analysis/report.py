"""``siamlab analyze RUN``: verdicts, final metrics and diagnostic plots of one run directory.

A run directory holds ``metrics.jsonl`` (one JSON object per line: ``kind`` train | diag | eval |
event, ``step``, ``epoch``, metric → value), ``summary.json`` and ``config.yaml``; optionally
``snapshots/*.npz`` written by :meth:`siamlab.analysis.live.LiveDiagnostics.snapshot`. Plots are PNG
files drawn with matplotlib's Agg canvas (no display, no global backend switch); a plot is drawn only
when the metrics it needs are present.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Optional

import numpy as np
from ..atomic import atomic_file
from ..config import parse_yaml
from ..errors import DataError, SiamlabError
from .gradients import eta_curve
from .verdict import WINDOW, as_float, explain, verdicts

LABEL_FREE_PANELS = (("RankMe (Garrido et al. 2023)", "rankme"), ("LiDAR (Thilak et al. 2023)", "lidar"),
                     ("α-ReQ (Agrawal et al. 2022)", "alpha_req"))
LABEL_FREE_PANELS_BATCH = [(title, [key]) for title, key in LABEL_FREE_PANELS]
ETAS = [round(-1.5 + 0.05 * i, 2) for i in range(61)]  # ZHANG Fig. 5a range and beyond


# --- reading ------------------------------------------------------------------------------------
def load_run(run_dir) -> dict:
    """``records`` (metrics.jsonl), ``summary`` (dict, {} if absent), ``config`` ({} if absent), ``snapshots``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"run directory {str(path)!r} does not exist; pass the folder printed by `siamlab train`.")
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise DataError(f"{str(path)!r} is not a siamlab run directory (no metrics.jsonl); pass the folder printed by `siamlab train`.")
    records = []
    for line in metrics.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict):
            records.append(rec)
    return {"records": records, "summary": _read_mapping(path / "summary.json", json.loads),
            "config": _read_mapping(path / "config.yaml", lambda text: parse_yaml(text, f"{str(path / 'config.yaml')!r}")),
            "snapshots": sorted((path / "snapshots").glob("*.npz"))}


def _read_mapping(path: Path, parse) -> dict:
    if not path.is_file():
        return {}
    try:
        data = parse(path.read_text())
    except ValueError:
        raise DataError(f"{str(path)!r} is corrupt (not valid {path.suffix[1:].upper()}); restore it or delete it.") from None
    return data if isinstance(data, dict) else {}


def series(records: list, kind: str, key: str, x: str = "step") -> tuple[list, list]:
    """(x, value) of ``key`` over the finite values in records of ``kind`` (random-init evals excluded)."""
    xs, ys = [], []
    for r in records:
        if r.get("kind") != kind or r.get("random_init"):
            continue
        v, xv = as_float(r.get(key)), as_float(r.get(x))
        if v is not None and xv is not None and math.isfinite(v):
            xs.append(xv)
            ys.append(v)
    return xs, ys


def final_values(records: list, kind: str) -> dict:
    """Median of the last :data:`WINDOW` finite values of every metric in records of ``kind``."""
    keys = [k for r in records if r.get("kind") == kind for k in r if k not in ("kind", "step", "epoch")]
    out = {}
    for key in dict.fromkeys(keys):
        _, ys = series(records, kind, key)
        if ys:
            out[key] = statistics.median(ys[-WINDOW:])
    return out


# --- plotting -----------------------------------------------------------------------------------
def _figure(ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * ncols, 3.6))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig, out_dir: Path, name: str, plots: list) -> None:
    """Write the figure whole or not at all (:func:`siamlab.atomic.atomic_file`); a failed write leaves the
    previous plot and no temporary file, and is one sentence."""
    fig.tight_layout()
    path = out_dir / name
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png", dpi=110)
    except OSError as err:
        raise SiamlabError(f"could not write the plot {path} ({err.strerror or err}); free space or choose "
                           "another --out folder.") from None
    plots.append(str(path))


def _curves(records, out_dir, plots, name, panels, kind="diag", x="step") -> None:
    """One figure of line panels; ``panels`` = [(title, [metric keys])]. Skipped when nothing is present."""
    present = [(t, [(k, series(records, kind, k, x)) for k in keys]) for t, keys in panels]
    present = [(t, [(k, s) for k, s in ks if s[0]]) for t, ks in present]
    present = [(t, ks) for t, ks in present if ks]
    if not present:
        return
    fig, axes = _figure(len(present))
    for ax, (title, ks) in zip(axes, present):
        for key, (xs, ys) in ks:
            ax.plot(xs, ys, "o-" if len(xs) < 30 else "-", ms=3, label=key)
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.legend(fontsize=7)
    _save(fig, out_dir, name, plots)


def _gen_bound_plot(records, out_dir, plots) -> None:
    """GEN Figs. 3–4: L_bound against kNN accuracy over the evaluations, with the least-squares line."""
    feats = sorted({k[len("l_bound_"):] for r in records if r.get("kind") == "eval" for k in r if k.startswith("l_bound_")})
    pairs = []
    for f in feats:
        rows = [(as_float(r.get(f"l_bound_{f}")), as_float(r.get(f"knn_{f}"))) for r in records
                if r.get("kind") == "eval" and not r.get("random_init")]
        rows = [(a, b) for a, b in rows if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
        if rows:
            pairs.append((f, rows))
    if not pairs:
        return
    fig, axes = _figure(len(pairs))
    for ax, (f, rows) in zip(axes, pairs):
        lb, acc = np.array(rows).T
        ax.plot(lb, acc, "o-", ms=3)
        if len(rows) >= 2 and np.ptp(lb) > 0:
            slope, icpt = np.polyfit(lb, acc, 1)
            grid = np.linspace(lb.min(), lb.max(), 2)
            ax.plot(grid, slope * grid + icpt, "r-", label=f"least squares, slope {slope:.3g}")
            ax.legend(fontsize=7)
        ax.set_xlabel(f"L_bound ({f})")
        ax.set_ylabel(f"kNN accuracy ({f}), %")
    _save(fig, out_dir, "gen_bound.png", plots)


def _eta_plot(records, out_dir, plots) -> None:
    """ZHANG Fig. 5a from the last diag log's cos(o_e, o) and ‖o_e‖/‖o‖ (the curve is fixed by these two numbers)."""
    last = [(r["step"], as_float(r.get("cos_oe_o")), as_float(r.get("oe_over_o"))) for r in records
            if r.get("kind") == "diag" and "cos_oe_o" in r and "oe_over_o" in r]
    last = [t for t in last if t[1] is not None and t[2] is not None and math.isfinite(t[1] * t[2])]
    if not last:
        return
    step, c, rho = last[-1]
    fig, (ax,) = _figure()
    ax.plot(ETAS, eta_curve(c, rho, ETAS), label=f"step {step}")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.axvline(c * rho, color="r", ls="--", label=f"η* = {c * rho:.3f}")
    ax.set_xlabel("η")
    ax.set_ylabel("cos(o_e − η·o, o)")
    ax.legend(fontsize=7)
    _save(fig, out_dir, "eta_scan.png", plots)


def _snapshot_plots(snapshots, out_dir, plots) -> None:
    """Spectra and predictor heatmaps / eigenvalues from the last snapshot (BRIDGE Figs. 3–4)."""
    if not snapshots:
        return
    snap = np.load(snapshots[-1])
    spectra = [k for k in snap.files if k.startswith("spectrum_")]
    if spectra:
        fig, (ax,) = _figure()
        for k in spectra:
            s = np.asarray(snap[k], dtype=float)
            if s.size and s.max() > 0:
                ax.semilogy(np.arange(1, s.size + 1), np.maximum(s / s.max(), 1e-12), label=k[len("spectrum_"):])
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("covariance eigenvalue / max")
        ax.legend(fontsize=7)
        _save(fig, out_dir, "spectrum.png", plots)
    mats = [k for k in ("W_p", "WtW", "FFt") if k in snap.files]
    if mats or "eig_real" in snap.files:
        fig, axes = _figure(len(mats) + ("eig_real" in snap.files))
        for ax, k in zip(axes, mats):
            m = np.asarray(snap[k], dtype=float)
            lim = float(np.abs(m).max()) or 1.0
            im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(k)
            fig.colorbar(im, ax=ax, fraction=0.046)
        if "eig_real" in snap.files:
            ax = axes[-1]
            ax.plot(snap["eig_real"], snap["eig_imag"], "o", ms=3)
            ax.set_xlabel("Re λ(W_p)")
            ax.set_ylabel("Im λ(W_p)")
        _save(fig, out_dir, "predictor_heatmaps.png", plots)


# --- text ---------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _block(title: str, values: dict) -> list:
    if not values:
        return []
    width = max(len(k) for k in values)
    return [title] + [f"  {k:<{width}}  {_fmt(v)}" for k, v in sorted(values.items())]


def analyze(run_dir, out_dir: Optional[str] = None) -> dict:
    """Print and return the verdicts and final metrics of ``run_dir`` and write its diagnostic plots.

    Returns ``{"text", "verdict", "final_diag", "final_eval", "plots", "out_dir"}``; plots go to
    ``out_dir`` (default ``RUN/analysis``)."""
    run = load_run(run_dir)
    records, summary = run["records"], run["summary"]
    status = summary.get("status", "unknown")
    verdict = verdicts(records, status)
    final_diag, final_eval = final_values(records, "diag"), final_values(records, "eval")
    out = Path(out_dir) if out_dir else Path(run_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    plots: list = []
    _curves(records, out, plots, "collapse.png", [
        ("m_o / m_r (ZHANG §3.1)", ["m_o", "m_r", "p_m_o", "p_m_r"]),
        ("√d·std (Chen & He)", ["std_scaled", "p_std_scaled"]),
        ("center norm at the final BN (CENTER Fig. 5)", ["center_pre_bn", "center_post_bn"])])
    _curves(records, out, plots, "decorrelation.png", [("covariance term (ZHANG A.6)", ["cov_term"])])
    feats = sorted({k[len("sigma_i_"):] for r in records if r.get("kind") == "eval" for k in r if k.startswith("sigma_i_")})
    _curves(records, out, plots, "sigma_minus_identity.png",
            [("‖Σ − I‖²/d, clean features (BRIDGE Fig. 1)", [f"sigma_i_{f}" for f in feats])], kind="eval", x="epoch")
    _curves(records, out, plots, "gradients.png", [
        ("extra gradient split (ZHANG §3.2)", ["oe_ratio", "re_ratio"]),
        ("cosines (ZHANG Fig. 5a, 5c)", ["cos_oe_o", "cos_re_decor", "cos_oe_decor"]),
        ("InfoNCE λ entropy (ZHANG Fig. 7a)", ["lambda_entropy"])])
    _curves(records, out, plots, "predictor.png", [
        ("bias vs center (ZHANG Table 6)", ["bias_center_cos"]),
        ("W_p (BRIDGE Figs. 3–4, Thm 3.1)", ["wp_symmetry", "wp_diag_share", "wp_fft_rel_fit"])])
    _curves(records, out, plots, "label_free.png", [  # README "Label-free quality"
        (title, [f"{key}_{f}" for f in ("backbone", "projector")]) for title, key in LABEL_FREE_PANELS], kind="eval", x="epoch")
    _curves(records, out, plots, "label_free_batch.png", LABEL_FREE_PANELS_BATCH)  # siamlab.Monitor's, per batch
    _gen_bound_plot(records, out, plots)
    _eta_plot(records, out, plots)
    _snapshot_plots(run["snapshots"], out, plots)

    name = summary.get("method") or (run["config"].get("method") or {}).get("name", "?")
    data = summary.get("dataset") or (run["config"].get("data") or {}).get("name", "?")
    ev = explain(verdict)
    lines = [f"run: {run_dir}  method: {name}  dataset: {data}  status: {status}",
             f"verdict: {verdict['verdict']}" + (f" ({ev}; Z from {verdict['evidence']} logs)" if ev else ""),
             f"rule: {verdict['rule']}; diverged if the loss became NaN/Inf"]
    lines += _block(f"final diagnostics (median of the last {WINDOW} diag logs):", final_diag)
    lines += _block("final evaluation:", summary.get("final") or final_eval)
    lines += ["plots:"] + [f"  {p}" for p in plots] if plots else ["plots: none (no diagnostics in the metrics)"]
    text = "\n".join(lines)
    print(text)
    return {"text": text, "verdict": verdict, "final_diag": final_diag, "final_eval": final_eval,
            "plots": plots, "out_dir": str(out)}
