"""Figures of the experiment catalogue (matplotlib, Agg backend): each function draws one PNG.

Every function takes the experiment's :class:`~siamlab.experiments.results.Results`, the figure's
params dict and the output path, and returns False (drawing nothing) when there is no data.
Seed spread: the line is the mean over seeds (series interpolated on the first seed's epochs),
the shaded band spans the minimum to the maximum seed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..analysis.stats import pearson  # noqa: E402
from ..text import slug  # noqa: E402
from .files import save_figure  # noqa: E402


def _labels(results, params) -> list[str]:
    have = results.labels()
    return [lab for lab in params["arms"] if lab in have] if params.get("arms") else have


# Figures are drawn at DPI dots per inch, at most MAX_WIDTH_IN wide, and no text is smaller than 8 pt: in a report
# at 1280 px they are shown at their own size (report/html.py), so every letter is at least 10 px high.
DPI = 90
MAX_WIDTH_IN = 13.0  # 1170 px


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=DPI)
    finally:
        plt.close(fig)
    return True


def seed_band(seeds: list) -> tuple:
    """(epochs, mean, low, high) of per-seed (epoch, value) series on the first seed's epochs."""
    seeds = [s for s in seeds if s]
    if not seeds:
        return None
    ep = np.array([e for e, _ in seeds[0]], dtype=float)
    ys = np.stack([np.interp(ep, [e for e, _ in s], [v for _, v in s]) for s in seeds])
    return ep, ys.mean(0), ys.min(0), ys.max(0)


def curve(results, params: dict, path: Path) -> bool:
    measure = params["measure"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    for lab in _labels(results, params):
        band = seed_band(results.series(lab, measure))
        if band is None:
            continue
        ep, m, lo, hi = band
        (line,) = ax.plot(ep, m, label=lab, marker="." if len(ep) < 15 else None)
        ax.fill_between(ep, lo, hi, color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    for x in params.get("vlines", []):
        ax.axvline(x, color="grey", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(params.get("ylabel", measure))
    if params.get("logy"):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def sweep(results, params: dict, path: Path) -> bool:
    measure = params["measure"]
    groups = {}
    for lab in _labels(results, params):
        arm = results.experiment.arm(lab, results.scale)
        st = results.stats(lab, measure)
        if st["mean"] is not None and arm.x is not None:
            groups.setdefault(arm.group, []).append((arm.x, st["mean"], st["std"] or 0.0))
    if not groups:
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for g, pts in groups.items():
        pts.sort()
        x, y, e = (np.array(v) for v in zip(*pts))
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=g or None)
    if params.get("logx"):
        ax.set_xscale("log")
    ax.set_xlabel(params.get("xlabel", results.experiment.sweep or "x"))
    ax.set_ylabel(params.get("ylabel", measure))
    if any(groups):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def bars(results, params: dict, path: Path) -> bool:
    """One bar per arm of ``measure``, or grouped bars of several ``measures`` (e.g. init vs end)."""
    names = params.get("measures") or [params["measure"]]
    labs = [lab for lab in _labels(results, params) if any(results.stats(lab, m)["mean"] is not None for m in names)]
    if not labs:
        return False
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH_IN, max(5.0, 1.1 * len(labs) * len(names) ** 0.5)), 4.0))
    width = 0.8 / len(names)
    for j, m in enumerate(names):
        st = [results.stats(lab, m) for lab in labs]
        ys = [s["mean"] if s["mean"] is not None else np.nan for s in st]
        es = [s["std"] or 0.0 for s in st]
        xs = np.arange(len(labs)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, ys, width=width, yerr=es, capsize=3, label=m if len(names) > 1 else None)
    ax.set_xticks(range(len(labs)))
    ax.set_xticklabels(labs, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(params.get("ylabel", names[0]))
    if params.get("logy"):
        ax.set_yscale("log")
    if len(names) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def lstsq_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the least-squares line y ≈ a·x + b."""
    a, b = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def scatter_fit(results, params: dict, path: Path) -> bool:
    """Measure y against measure x over arms (GEN Fig. 3), least-squares line over ``fit_arms``."""
    mx, my = params["x"], params["y"]
    pts = []
    for lab in _labels(results, params):
        x, y = results.mean(lab, mx), results.mean(lab, my)
        if x is not None and y is not None:
            pts.append((lab, x, y))
    if len(pts) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.scatter([p[1] for p in pts], [p[2] for p in pts], color="#1f77b4")
    for lab, x, y in pts:
        ax.annotate(lab, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    fit = [p for p in pts if p[0] in params.get("fit_arms", [p[0] for p in pts])]
    if len(fit) >= 2:
        a, b = lstsq_line([p[1] for p in fit], [p[2] for p in fit])
        xs = np.linspace(min(p[1] for p in pts), max(p[1] for p in pts), 50)
        r = pearson([p[1] for p in fit], [p[2] for p in fit])
        ax.plot(xs, a * xs + b, "r-", label=f"least squares: slope {a:.3g}" + (f", r = {r:+.2f}" if r is not None else ""))
        ax.legend(fontsize=8)
    ax.set_xlabel(params.get("xlabel", mx))
    ax.set_ylabel(params.get("ylabel", my))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def trajectory(results, params: dict, path: Path) -> bool:
    """Two eval measures against each other over training, per arm (GEN Fig. 4), fitted after burn-in."""
    mx, my, burn = params["x"], params["y"], params.get("burn_in", 0.25)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    drawn = False
    for lab in _labels(results, params):
        for sx, sy in zip(results.series(lab, mx), results.series(lab, my)):
            ey = dict(sy)
            pts = [(e, x, ey[e]) for e, x in sx if e in ey]
            if len(pts) < 2:
                continue
            (line,) = ax.plot([p[1] for p in pts], [p[2] for p in pts], marker=".", label=lab)
            last_ep = pts[-1][0]
            late = [p for p in pts if p[0] >= burn * last_ep]
            if len(late) >= 2:
                a, b = lstsq_line([p[1] for p in late], [p[2] for p in late])
                xs = np.array([min(p[1] for p in late), max(p[1] for p in late)])
                ax.plot(xs, a * xs + b, "--", color=line.get_color(), lw=1)
            drawn = True
            break  # first seed only: trajectories of several seeds overlap
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel(params.get("xlabel", mx))
    ax.set_ylabel(params.get("ylabel", my))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def eta_scan_curve(cos_oe_o: float, ratio: float, etas: np.ndarray) -> np.ndarray:
    """ZHANG Fig. 5a: cos(o_e − η·o, o) over η from c = cos(o_e, o) and ρ = ‖o_e‖/‖o‖.

    o_e = ρ‖o‖(c·û + s·v̂) with û = o/‖o‖, s = sqrt(1 − c²); then o_e − η·o = ‖o‖((ρc − η)û + ρs·v̂),
    so the cosine with o is (ρc − η)/sqrt((ρc − η)² + ρ²s²); it crosses zero at η* = ρc.
    """
    s2 = max(0.0, 1.0 - cos_oe_o**2)
    num = ratio * cos_oe_o - etas
    return num / np.sqrt(num**2 + ratio**2 * s2 + 1e-300)


def eta_scan(results, params: dict, path: Path) -> bool:
    """ZHANG Fig. 5a rebuilt from the logged cos(o_e, o) and ‖o_e‖/‖o‖ (end of training, mean over seeds)."""
    etas = np.linspace(params.get("eta_min", -2.0), params.get("eta_max", 2.0), 201)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    drawn = False
    for lab in _labels(results, params):
        c, rho = results.mean(lab, "cos_oe_o"), results.mean(lab, "oe_over_o")
        if c is None or rho is None:
            continue
        ax.plot(etas, eta_scan_curve(c, rho, etas), label=f"{lab} (η* = {rho * c:+.2f})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel("η")
    ax.set_ylabel("cos(o_e − η·o, o)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def heatmap(results, params: dict, path: Path, out_dir: Path) -> bool:
    """Matrices saved by a probe (``probe/<arm>-s0.npz``): one panel per (arm, array name)."""
    panels = []
    for lab in _labels(results, params):
        f = out_dir / "probe" / f"{slug(lab)}-s0.npz"
        if not f.exists():
            continue
        data = np.load(f)
        for key in params.get("keys", list(data.keys())):
            if key in data:
                panels.append((f"{lab}: {key}", data[key]))
    if not panels:
        return False
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (title, m) in zip(axes.flat, panels):
        lim = float(np.abs(m).max()) or 1.0
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def spectrum(results, params: dict, path: Path, out_dir: Path) -> bool:
    """Sorted eigenvalues saved by a probe (``keys`` of ``probe/<arm>-s0.npz``), one line per key (BRIDGE Fig. 4b)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    drawn = False
    for lab in _labels(results, params):
        f = out_dir / "probe" / f"{slug(lab)}-s0.npz"
        if not f.exists():
            continue
        data = np.load(f)
        for key in params.get("keys", []):
            if key in data:
                ax.plot(np.arange(1, len(data[key]) + 1), data[key], marker=".", label=f"{lab}: {key}")
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


KINDS = {"curve": curve, "sweep": sweep, "bars": bars, "scatter_fit": scatter_fit, "trajectory": trajectory, "eta_scan": eta_scan}


def draw(kind: str, results, params: dict, path: Path, out_dir: Path) -> bool:
    if kind == "points":  # GEN Fig. 2 (gen-f2)
        from .points import draw as draw_points

        return draw_points(results, params, path)
    if kind in ("heatmap", "spectrum"):
        return (heatmap if kind == "heatmap" else spectrum)(results, params, path, out_dir)
    return KINDS[kind](results, params, path)
