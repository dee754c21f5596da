"""Plots and the self-contained HTML page of ``siamlab diagnose`` (text escaped, images inlined)."""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from ..report.files import save_figure, write_result
from ..report.html import CSS, VIEWPORT, figures_html, scrolling

FEATURE_METRICS = ("std", "std_scaled", "m_o", "m_r", "cov_term", "sigma_i", "l_cor", "l_bound", "erank",
                   "rankme", "lidar", "alpha_req", "knn", "ncm", "gen_bound")
NETS = (("random_init", "random init"), ("trained", "trained"))
BAR_PANELS = (("kNN / NCM accuracy, %", ("knn", "ncm")),
              ("collapse (1 = isotropic / 0 = collapsed)", ("std_scaled", "m_r", "m_o")),
              ("‖Σ − I‖²/d (BRIDGE Fig. 1)", ("sigma_i",)))


def _figure(ncols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.8 * ncols, 3.6))  # 3 panels: 1140 px at 100 dpi, shown at that size (report/html.py)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def spectrum_plot(result: dict, path: Path) -> bool:
    """Covariance eigenvalues / largest, trained beside random init, one panel per feature."""
    feats = [f for f in ("backbone", "projector") if f in result["networks"]["trained"]["spectra"]]
    if not feats:
        return False
    fig, axes = _figure(len(feats))
    for ax, feat in zip(axes, feats):
        for which, label in NETS:
            s = np.asarray(result["networks"][which]["spectra"].get(feat, []), dtype=float)
            if s.size and s.max() > 0:
                erank = result["networks"][which]["metrics"].get(f"erank_{feat}", float("nan"))
                ax.semilogy(np.arange(1, s.size + 1), np.maximum(s / s.max(), 1e-12), label=f"{label} (eff. rank {erank:.1f})")
        ax.set_title(f"spectrum, {feat} (d = {result['networks']['trained']['dims'][feat]})", fontsize=10)
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("covariance eigenvalue / max")
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def bars_plot(result: dict, path: Path) -> bool:
    """Grouped bars of the headline metrics of the diagnosed output, trained beside random init."""
    out = result["output"]
    mets = {w: result["networks"][w]["metrics"] for w, _ in NETS}
    panels = [(t, [k for k in keys if f"{k}_{out}" in mets["trained"]]) for t, keys in BAR_PANELS]
    panels = [(t, ks) for t, ks in panels if ks]
    if not panels:
        return False
    fig, axes = _figure(len(panels))
    for ax, (title, keys) in zip(axes, panels):
        x = np.arange(len(keys))
        for i, (which, label) in enumerate(NETS):
            vals = [float(mets[which].get(f"{k}_{out}", np.nan)) for k in keys]
            ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, label=label)
        ax.set_xticks(x, keys)
        ax.set_title(f"{title}, {out}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def metric_rows(result: dict) -> list:
    """[(metric key, random-init value, trained value)] for every metric of every feature, in display order."""
    nets = result["networks"]
    return [(f"{m}_{feat}", nets["random_init"]["metrics"].get(f"{m}_{feat}"), nets["trained"]["metrics"][f"{m}_{feat}"])
            for feat in ("backbone", "projector") for m in FEATURE_METRICS if f"{m}_{feat}" in nets["trained"]["metrics"]]


def fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else "-"


def _table(result: dict) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(fmt(r))}</td><td>{escape(fmt(t))}</td></tr>" for k, r, t in metric_rows(result))
    return scrolling('<table class="results" id="results-table"><tr><th>metric</th><th>random init</th><th>trained</th></tr>'
                     + rows + "</table>")


def write_page(result: dict, out: Path) -> Path:
    """Draw the plots into ``out`` and write ``out/diagnosis.html``; returns its path."""
    figures = []
    for name, caption, draw in (("diagnose_metrics.png", "headline metrics, trained beside random init", bars_plot),
                                ("diagnose_spectrum.png", "covariance spectrum and effective rank", spectrum_plot)):
        drawn = draw(result, out / name)
        figures.append({"file": name, "caption": caption, "drawn": drawn, "why": "no finite features"})
    from ..analysis.verdict import explain

    verdicts = "".join(
        f"<p><b>{escape(label)}</b> ({escape(result['output'])}): <b>{escape(result['networks'][w]['verdict']['verdict'])}</b>"
        f" <small>{escape(explain(result['networks'][w]['verdict']))}</small></p>" for w, label in NETS)
    rule = escape(result["networks"]["trained"]["verdict"]["rule"])
    title = f"siamlab diagnose: {result['model']}"
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{VIEWPORT}<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p><b>Layout:</b> {escape(str(result['layout']))} &middot; <b>data:</b> {escape(str(result['dataset']))}
 (K = {escape(str(result['num_classes']))}; {escape(str(result['train_samples']))} train / {escape(str(result['test_samples']))} test images)</p>
<h2>Collapse verdict</h2>{verdicts}<p><small>Rule: {rule}.</small></p>
<h2>Metrics on clean test features</h2>{_table(result)}
<p><small>std / std_scaled: Chen &amp; He's Std of l2-normalized features and √d·Std; m_o = ‖center‖ (CENTER's s), m_r
(ZHANG §3.1); cov_term: ZHANG A.6; sigma_i: ‖Σ − I‖²/d (BRIDGE Fig. 1); l_cor, l_bound: GEN eq. 8, 11 with the dataset's K;
erank: effective rank of the covariance; rankme, lidar, alpha_req: the label-free measures of Garrido et al. 2023,
Thilak et al. 2023 (on augmented views of training images) and Agrawal et al. 2022 (README "Label-free quality"); knn: weighted kNN top-1, %; ncm: nearest class mean, %; gen_bound: GEN Theorem 3 bound
on the NCM error, %. The random-init row is the same architecture with fresh weights.</small></p>
<h2>Figures</h2>{figures_html({"figures": figures}, out)}
</body></html>
"""
    path = out / "diagnosis.html"
    write_result(path, html)
    return path
