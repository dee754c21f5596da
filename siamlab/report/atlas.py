"""A collapse atlas's folder (``siamlab atlas``): heatmaps, atlas.json and atlas.html (offline, text escaped, images
inlined, readable on a phone like every report: :data:`siamlab.report.html.CSS`; every file written atomically).

Heatmaps put the x knob's values along the columns and the y knob's along the rows (one row without y):

* the collapse verdict, in categorical colours with a legend (:data:`VERDICT_COLOURS`); a cell whose seeds disagree
  shows the most frequent verdict and writes how many seeds gave it;
* the kNN gain over the random-init network (backbone, percentage points; a diverging scale centred at 0);
* the effective rank of clean projector features;
* the label-free measure(s) of ``label_free_shown`` (:data:`siamlab.experiments.atlas.LABEL_FREE_SHOWN`) at the end
  of training.

``overview.png`` holds all of them side by side (the README's figure); ``figures/*.png`` one each.
"""
from __future__ import annotations

import json
import math
import textwrap
from html import escape
from pathlib import Path

from .files import save_figure, write_result

VERDICT_COLOURS = {  # colour-blind-safe (Okabe-Ito), in order of severity
    "not collapsed": "#009E73", "dimensional collapse": "#E69F00", "collapsed (predictor output P)": "#CC79A7",
    "collapsed": "#D55E00", "diverged": "#000000", "unknown": "#BBBBBB", "not run": "#FFFFFF", "error": "#FFFFFF",
}
SHORT = {"not collapsed": "ok", "dimensional collapse": "dim", "collapsed (predictor output P)": "P", "collapsed": "coll",
         "diverged": "NaN", "unknown": "?", "not run": "–", "error": "err"}
TITLES = {"knn_gain": "kNN gain over random init (points)", "erank": "effective rank of clean z",
          "rankme_projector": "RankMe (projector)", "lidar_projector": "LiDAR (projector)",
          "alpha_req_projector": "α-ReQ α (projector)", "rankme_backbone": "RankMe (backbone)",
          "lidar_backbone": "LiDAR (backbone)", "alpha_req_backbone": "α-ReQ α (backbone)"}


def _grid(atlas: dict, value) -> list:
    """rows (y) × columns (x) of ``value(cell)``."""
    ny = len(atlas["y"]["values"]) if atlas.get("y") else 1
    grid = [[None] * len(atlas["x"]["values"]) for _ in range(ny)]
    for c in atlas["cells"]:
        grid[c["j"] or 0][c["i"]] = value(c)
    return grid


def _axes(ax, atlas: dict, title: str) -> None:
    ax.set_xticks(range(len(atlas["x"]["texts"])))
    ax.set_xticklabels(atlas["x"]["texts"], rotation=30 if len(atlas["x"]["texts"]) > 5 else 0)
    ax.set_xlabel(atlas["x"]["key"])
    if atlas.get("y"):
        ax.set_yticks(range(len(atlas["y"]["texts"])))
        ax.set_yticklabels(atlas["y"]["texts"])
        ax.set_ylabel(atlas["y"]["key"])
    else:
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)


def verdict_panel(ax, atlas: dict) -> None:
    """The categorical verdict map with its legend (only the verdicts that occur)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    names = list(VERDICT_COLOURS)
    grid = _grid(atlas, lambda c: names.index(c["verdict"]) if c["verdict"] in names else names.index("unknown"))
    ax.imshow(grid, cmap=ListedColormap(list(VERDICT_COLOURS.values())), vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
    for c in atlas["cells"]:
        n, k = c["seeds"], c["verdicts"].get(c["verdict"], 0)
        text = SHORT.get(c["verdict"], "?") + (f"\n{k}/{n}" if n > 1 and k < n else "")
        dark = c["verdict"] in ("diverged", "collapsed", "collapsed (predictor output P)")
        ax.text(c["i"], c["j"] or 0, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    seen = [v for v in names if any(c["verdict"] == v for c in atlas["cells"])]
    ax.legend(handles=[Patch(facecolor=VERDICT_COLOURS[v], edgecolor="#555", label=f"{SHORT[v]}: {v}") for v in seen],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _axes(ax, atlas, "collapse verdict")


def number_panel(fig, ax, atlas: dict, key: str) -> None:
    """A numeric map of the cells' mean ``key``; the kNN gain on a diverging scale centred at 0, each side stretched to
    its own extreme (a −60 collapse would otherwise wash out gains of a few points)."""
    import numpy as np
    from matplotlib.colors import Normalize, TwoSlopeNorm

    grid = np.array(_grid(atlas, lambda c: c["mean"].get(key)), dtype=float)
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if key == "knn_gain":
        norm, cmap = TwoSlopeNorm(0.0, min(lo, -1.0), max(hi, 1.0)), "RdBu"
    else:
        norm, cmap = Normalize(lo, hi if hi > lo else lo + 1.0), "viridis"
    im = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for (j, i), v in np.ndenumerate(grid):
        if math.isfinite(v):  # dark text on the light part of each scale
            shade = float(norm(v))
            light = abs(shade - 0.5) < 0.3 if key == "knn_gain" else shade > 0.6
            ax.text(i, j, f"{v:.3g}", ha="center", va="center", fontsize=8, color="black" if light else "white")
        else:
            ax.text(i, j, "–", ha="center", va="center", fontsize=8)
    _axes(ax, atlas, TITLES.get(key, key))


def panels(atlas: dict) -> list:
    return ["verdict", "knn_gain", "erank", *atlas.get("label_free_shown", [])]


PANEL_W, MAX_W = 6.5, 13.0  # inches at DPI: two panels side by side fit the report's 1200 px at their own size
DPI = 90  # with no text below 8 pt, every letter is at least 10 px high (report/plots.py)


def _size(atlas: dict) -> tuple:
    """(width, height) in inches of one map: about 0.6 in per column, 0.45 in per row, within PANEL_W."""
    nx, ny = len(atlas["x"]["values"]), len(atlas["y"]["values"]) if atlas.get("y") else 1
    return min(PANEL_W, 2.6 + 0.6 * nx), 1.6 + 0.45 * ny


def draw(atlas: dict, key: str, path: Path) -> None:
    from .plots import plt

    w, h = _size(atlas)
    fig, ax = plt.subplots(figsize=(min(MAX_W, w + (3.0 if key == "verdict" else 0.8)), h + 0.6))
    try:
        verdict_panel(ax, atlas) if key == "verdict" else number_panel(fig, ax, atlas, key)
        fig.tight_layout()
        save_figure(fig, path, dpi=DPI)
    finally:
        plt.close(fig)


def draw_overview(atlas: dict, path: Path) -> None:
    """Every map in one figure, two per row (the verdict's legend beside the first), the atlas's title above."""
    from .plots import plt

    keys = panels(atlas)
    rows = math.ceil(len(keys) / 2)
    _, h = _size(atlas)
    fig, axes = plt.subplots(rows, 2, figsize=(MAX_W, rows * (h + 0.7) + 0.6), squeeze=False)
    try:
        for ax, key in zip(axes.flat, keys):
            verdict_panel(ax, atlas) if key == "verdict" else number_panel(fig, ax, atlas, key)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        fig.suptitle("\n".join(textwrap.wrap(f"{atlas['title']} ({atlas['method']}, {atlas['scale']} scale, "
                                             f"{atlas['seeds']} seed(s))", 100)), fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title
        save_figure(fig, path, dpi=DPI)
    finally:
        plt.close(fig)


def _figures(atlas: dict, folder: Path) -> list:
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    out = [{"file": "figures/overview.png", "caption": "every map side by side"}]
    out += [{"file": f"figures/{k}.png", "caption": "collapse verdict" if k == "verdict" else TITLES.get(k, k)} for k in panels(atlas)]
    for f in out:
        key = Path(f["file"]).stem
        try:
            draw_overview(atlas, folder / f["file"]) if key == "overview" else draw(atlas, key, folder / f["file"])
            f["drawn"], f["why"] = True, ""
        except (ValueError, TypeError, ArithmeticError, KeyError) as err:
            f["drawn"], f["why"] = False, f"{type(err).__name__}: {err}"
    return out


COLUMNS = [("knn", "kNN", 1), ("knn_gain", "kNN gain", 2), ("erank", "eff. rank", 1), ("collapse_margin", "collapse margin", 2),
           ("std_scaled", "√d·std(z)", 3), ("center", "‖center‖ (m_o)", 3), ("p_std_scaled", "√d·std(P)", 3),
           ("eta", "η*", 3), ("rankme_backbone", "RankMe (backbone)", 1), ("rankme_projector", "RankMe (z)", 1),
           ("lidar_projector", "LiDAR (z)", 1), ("alpha_req_projector", "α-ReQ (z)", 2), ("cpu_seconds", "CPU s", 0)]


def _fmt(v, digits: int) -> str:
    return "—" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) else f"{v:.{digits}f}"


def _cell_rows(atlas: dict) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in ["cell", "verdict (seeds)", *[t for _, t, _ in COLUMNS]])
    rows = []
    for c in atlas["cells"]:
        seeds = ", ".join(f"{v}: {n}" for v, n in c["verdicts"].items())
        cells = [c["label"], seeds, *[_fmt(c["mean"].get(k), d) for k, _, d in COLUMNS]]
        rows.append("<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in cells) + "</tr>")
    return f'<table class="results"><tr>{head}</tr>{"".join(rows)}</table>'


def _runs(atlas: dict) -> str:
    rows = "".join(f"<tr><td>{escape(c['label'])}</td><td>{escape(str(r.get('seed')))}</td><td>{escape(str(r.get('status')))}</td>"
                   f"<td>{escape(str(r.get('verdict')))}</td><td>{escape(_fmt(r.get('cpu_seconds'), 0))}</td>"
                   f"<td>{escape(str(r.get('message') or ''))}</td><td>{escape(str(r.get('run_dir') or ''))}</td></tr>"
                   for c in atlas["cells"] for r in c["runs"])
    return (f'<table class="runs"><tr><th>cell</th><th>seed</th><th>status</th><th>verdict</th><th>CPU s</th><th>message</th>'
            f'<th>folder</th></tr>{rows}</table>')


def render(atlas: dict, folder: Path, src: Path) -> str:
    from .html import CSS, VIEWPORT, figures_html, scrolling

    title = f"Collapse atlas: {atlas['title']}"
    axes = f"x: {atlas['x']['key']} ∈ {{{', '.join(atlas['x']['texts'])}}}"
    if atlas.get("y"):
        axes += f"; y: {atlas['y']['key']} ∈ {{{', '.join(atlas['y']['texts'])}}}"
    cpu = atlas.get("cpu_seconds")
    timing = (f"runs' CPU time {cpu / 60:.1f} min (÷ 2 cores: {cpu / 120:.1f} min)" if isinstance(cpu, (int, float)) else "")
    reading = f"<h2>Reading</h2><p>{escape(atlas['reading'])}</p>" if atlas.get("reading") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{VIEWPORT}<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p><b>Method:</b> {escape(atlas['method'])} &middot; <b>grid:</b> {escape(axes)} &middot; <b>scale:</b> {escape(atlas['scale'])}
 &middot; <b>seeds:</b> {escape(str(atlas['seeds']))} &middot; {escape(timing)} &middot; <b>finished:</b> {escape(str(atlas.get('finished', '')))}</p>
<p>{escape(str(atlas.get('notes', '')))}</p>
<h2>Why this grid</h2><p>{escape(atlas.get('reason') or 'A grid given on the command line.')}</p>{reading}
<h2>Maps</h2>{figures_html(atlas, folder, src)}
<h2>Cells</h2>{scrolling(_cell_rows(atlas))}
<p><small>Means over seeds. kNN: weighted kNN top-1 on clean backbone features; gain: over the same network at random
initialization. Verdict: complete collapse of z (coll), of the predictor output P where the loss acts on P (P),
dimensional collapse (dim: effective rank of clean projector features below max(2, min(K − 1, d/2))), divergence
(NaN); siamlab/analysis/verdict.py has the rule.</small></p>
<h2>Runs</h2>{scrolling(_runs(atlas))}
<h2>Settings of every cell</h2><pre>{escape(json.dumps({'base': atlas.get('base'), 'scale': atlas.get('scale_overrides')}, indent=1))}</pre>
</body></html>
"""


def write_atlas(atlas: dict, folder) -> Path:
    """Draw the heatmaps into ``folder/figures``, write ``atlas.json`` and ``atlas.html``; returns the page."""
    folder = Path(folder)
    atlas["figures"] = _figures(atlas, folder)
    src = folder / "atlas.json"
    write_result(src, json.dumps(atlas, indent=1, default=str) + "\n")
    page = folder / "atlas.html"
    write_result(page, render(atlas, folder, src))
    return page
