"""The scale-curve folder of an experiment (``siamlab reproduce ID --curve ...``): one plot per claim, curve.json and
curve.html (offline, text escaped, images inlined, every file written atomically).

A plot shows a claim's quantity against the training budget: the value at each budget with its 95 % interval over
seeds, coloured by that budget's verdict; the paper's value as a solid line and the rule's threshold as a dashed one.
"""
from __future__ import annotations

import json
import textwrap
from html import escape
from pathlib import Path

from .files import save_figure, write_result

COLOURS = {"reproduced": "#1b7f3b", "not reproduced": "#b3261e", "undecidable": "#5b5b8f"}


def _colour(verdict: str) -> str:
    for key in ("not reproduced", "undecidable", "reproduced"):
        if str(verdict).startswith(key):
            return COLOURS[key]
    return "#7a5c00"


def draw_claim(claim: dict, path: Path) -> tuple:
    """(drawn, why not) for one claim's plot."""
    from .plots import plt

    pts = [p for p in claim["points"] if p.get("value") is not None]
    if not pts:
        return False, "the rule gave no value at any budget (a results.json without the claim's quantity)"
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    try:
        for p in pts:
            lo, hi = p["interval"] if p.get("interval") else (p["value"], p["value"])
            ax.errorbar([p["budget"]], [p["value"]], yerr=[[p["value"] - lo], [hi - p["value"]]], fmt="o", capsize=4,
                        color=_colour(p.get("verdict", "")))
        ax.plot([p["budget"] for p in pts], [p["value"] for p in pts], color="#555", lw=1, zorder=0)
        if claim.get("paper") is not None:
            ax.axhline(claim["paper"], color="black", lw=1.2, label=f"paper: {claim['paper']:.4g}")
        if claim.get("threshold") is not None:
            ax.axhline(claim["threshold"], color="grey", ls="--", lw=1, label=f"rule's threshold: {claim['threshold']:.4g}")
        budgets = [p["budget"] for p in claim["points"]]
        if max(budgets) / min(budgets) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([f"×{b:g}" for b in budgets])
        ax.set_xlabel("training budget (× the scale's steps)")
        ax.set_ylabel(textwrap.shorten(claim.get("quantity") or "value", 60))
        ax.set_title("\n".join(textwrap.wrap(claim["text"], 70)[:3]), fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path, dpi=90)
    finally:
        plt.close(fig)
    return True, ""


def _point(p: dict) -> str:
    if p.get("value") is None:
        return f"— ({p.get('verdict', '')})"
    iv = p.get("interval")
    ivt = f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""
    return f"{p['value']:.4g}{ivt}, {p.get('seeds', '?')} seed(s): {p.get('verdict', '')}"


def render(curve: dict, folder: Path, src: Path) -> str:
    from .html import CSS, figures_html

    budgets = curve.get("budgets", [])
    head = "".join(f"<th>{escape(h)}</th>" for h in ["claim", "quantity", "paper", *[f"×{b:g}" for b in budgets], "trend",
                                                    f"verdict at ×{curve.get('largest_budget', 0):g}"])
    rows = []
    for c in curve.get("claims", []):
        by_budget = {p["budget"]: p for p in c.get("points", [])}
        cells = [c.get("text", ""), c.get("quantity", ""), "—" if c.get("paper") is None else f"{c['paper']:.4g}",
                 *[_point(by_budget[b]) if b in by_budget else "not run" for b in budgets],
                 f"{c.get('trend', '')}: {c.get('trend_text', '')}", c.get("verdict_at_largest", "")]
        rows.append("<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in cells) + "</tr>")
    runs = "".join(f"<li>×{r['budget']:g}: {escape(str(r.get('verdict', '')))} ({escape(str(r.get('folder', '')))})</li>"
                   for r in curve.get("runs", []))
    title = f"{curve.get('id', '?')}: scale curve ({curve.get('paper', '')} {curve.get('item', '')})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p><b>Expected (paper):</b> {escape(str(curve.get('expected', '')))} &middot; <b>scale:</b> {escape(str(curve.get('scale', '')))}</p>
<p>{escape(str(curve.get('notes', '')))}</p>
<p><small>Trend: the 95 % intervals at the smallest and the largest budget must not overlap for a move to count;
toward / away: the distance to the paper's value (or the rule's threshold) shrank / grew.</small></p>
<h2>Claims against the budget</h2>
<table class="results"><tr>{head}</tr>{"".join(rows)}</table>
<h2>Budgets</h2><ul>{runs}</ul>
<h2>Figures</h2>{figures_html(curve, folder, src)}
</body></html>
"""


def write_curve(curve: dict, folder) -> Path:
    """Draw the claims' plots into ``folder/figures``, write ``curve.json`` and ``curve.html``; returns the page."""
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for fig, claim in zip(curve["figures"], curve["claims"]):
        try:
            fig["drawn"], fig["why"] = draw_claim(claim, folder / fig["file"])
        except (ValueError, TypeError, ArithmeticError) as err:
            fig["drawn"], fig["why"] = False, f"{type(err).__name__}: {err}"
    src = folder / "curve.json"
    write_result(src, json.dumps(curve, indent=2, default=str) + "\n")
    page = folder / "curve.html"
    write_result(page, render(curve, folder, src))
    return page
