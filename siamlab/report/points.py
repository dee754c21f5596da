"""GEN Fig. 2's two panels: points on the circle (d = 2) or the sphere (d = 3) that minimize each loss.

Each panel overlays seed 0's final points of the arms it names (``summary["points"]``), the ±axes of the orthonormal
frame fitted to one arm's points (``summary["frame"]``, dashed) and the origin (red), as GEN draws them.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .files import save_figure  # noqa: E402

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def _seed0(results, label: str):
    for r in results.runs(label):
        if r.ran and r.seed == 0 and r.summary.get("points"):
            return r.summary
    return None


def _sphere(ax, d: int) -> None:
    t = np.linspace(0, 2 * np.pi, 200)
    if d == 2:
        ax.plot(np.cos(t), np.sin(t), color="#bbb", lw=1)
        ax.set_aspect("equal")
        return
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 16), np.linspace(0, np.pi, 9))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="#ddd", lw=0.5)
    ax.set_box_aspect((1, 1, 1))
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_ticklabels([])


def draw(results, params: dict, path: Path) -> bool:
    """params: ``d`` (2 or 3) and ``panels``: [{"title", "arms": [[label, legend], ...], "frame": label}]."""
    d, panels = params["d"], params["panels"]
    fig = plt.figure(figsize=(4.4 * len(panels), 4.4))
    drawn = False
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1, **({"projection": "3d"} if d == 3 else {}))
        _sphere(ax, d)
        for (lab, legend), colour in zip(panel["arms"], COLOURS):
            summ = _seed0(results, lab)
            if summ is None:
                continue
            ax.scatter(*np.asarray(summ["points"], dtype=float).T, color=colour, s=28, label=legend)
            if lab == panel.get("frame") and summ.get("frame"):
                for axis in np.asarray(summ["frame"], dtype=float):
                    ax.plot(*np.stack([-axis, axis]).T, color="#888", ls="--", lw=1)
            drawn = True
        ax.scatter(*np.zeros((1, d)).T, color="red", s=24)
        ax.set_title(panel["title"], fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    try:
        if drawn:
            fig.tight_layout()
            save_figure(fig, path, dpi=90)
    finally:
        plt.close(fig)
    return drawn
