"""Scale curves (``siamlab reproduce ID --curve 1,3,8``): each counted claim's quantity against the training budget.

Each budget is an ordinary run of the experiment at that budget (:func:`.runner.run_experiment`: its own folder
``<id>-<scale>-b<B>/``, the plain ``<id>-<scale>/`` at budget 1, cached runs reused, seeds added where they decide);
``curve_seeds`` runs the largest budget with that many seeds and adds none there (said in every output);
``max_seeds`` caps the seeds added at every other budget but ×1 (said too): the ×1 point is the scale's ordinary run,
whose folder a plain ``reproduce`` shares, so a curve never judges it on fewer seeds than that run has. The
curve folder ``<id>-<scale>-curve/`` holds:
    curve.json               per counted claim: its quantity, the paper's value, the rule's threshold, and per budget
                             the value, its 95 % interval over seeds, the seeds and the verdict; the trend, and the
                             verdict at the largest budget
    figures/claim-<i>.png    the quantity against the budget, the paper's value as a line
    curve.html

The values are what the claim rules report in results.json (``value``, ``interval``, ``threshold``, ``paper``,
``quantity``, ``seeds``); a results.json without them gives a curve without points, and says so.

Trend (:func:`trend`): the quantity moved when its 95 % intervals at the smallest and the largest budget do not
overlap — two disjoint 95 % intervals differ at well under the 5 % level, so seed noise alone is not a trend. It moved
*toward* the paper's value when its distance to it shrank, *away* when it grew; *none* when the intervals overlap;
*unknown* when either end has no value or no interval (one seed). Without a paper value the rule's threshold is the
reference, and for a one-sided rule *toward* is the direction in which the claim holds (a collapse margin falling
further below 0 moves toward "collapses").
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError

TRENDS = ("toward", "away", "none", "unknown")


def parse_budgets(text: str) -> list:
    """"1,3,8" -> [1.0, 3.0, 8.0] (sorted, distinct, each > 0, at least two); else one sentence."""
    try:
        vals = sorted({float(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        vals = []
    if len(vals) < 2 or vals[0] <= 0:
        raise ConfigError(f"--curve={text!r} is not valid: expected two or more budgets > 0 separated by commas, e.g. --curve 1,3,8.")
    return vals


def _num(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _interval(v) -> Optional[tuple]:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(x) is not None for x in v):
        return float(min(v)), float(max(v))
    return None


def _fmt(p: dict) -> str:
    iv = p.get("interval")
    return f"{p['value']:.4g}" + (f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "") + f" at ×{p['budget']:g}"


def trend(first: dict, last: dict, ref: Optional[float], ref_name: str = "the paper's value",
          side: Optional[str] = None) -> tuple:
    """(word, sentence with the numbers) for a quantity from ``first`` to ``last`` ({budget, value, interval}); the
    rule is in the module docstring. With a one-sided rule's threshold as ``ref`` (``side`` "above" / "below") the
    direction that makes the claim hold is *toward* — a collapse margin falling further below 0 moves toward
    "collapses", not away from it."""
    if first.get("value") is None or last.get("value") is None:
        return "unknown", "no value at the smallest or the largest budget"
    head = f"{_fmt(first)} → {_fmt(last)}"
    a, b = first.get("interval"), last.get("interval")
    if not a or not b:
        return "unknown", f"{head}: no 95 % interval at one end (one seed?), so a move cannot be told from noise"
    if a[0] <= b[1] and b[0] <= a[1]:
        return "none", f"{head}: the 95 % intervals overlap, no move beyond seed noise"
    if ref is None:
        return "unknown", f"{head}: it moved, but there is no paper value or threshold to move toward"
    if side in ("above", "below"):
        up = last["value"] > first["value"]
        word = "toward" if up == (side == "above") else "away"
        return word, f"{head}: {word} the claim (it holds {side} {ref_name} {ref:.4g})"
    d0, d1 = abs(first["value"] - ref), abs(last["value"] - ref)
    word = "toward" if d1 < d0 else "away"
    return word, f"{head}: {word} {ref_name} {ref:.4g} (distance {d0:.4g} → {d1:.4g})"


def _same_quantity(claim: dict, quantity: str) -> dict:
    """The claim's numbers for ``quantity`` (the one the curve follows, from its smallest budget): a compound claim
    reports the test that decided it, which can change with the budget (its collapse margin at one budget, its kNN gain
    at another), so the curve takes the part that measures the same quantity when the claim lists its parts."""
    if not quantity or claim.get("quantity") == quantity:
        return claim
    same = [p for p in claim.get("parts") or [] if p.get("quantity") == quantity]
    return same[0] if same else claim


def claim_points(results: list) -> list:
    """Per counted claim (in the experiment's order) its text, quantity, paper value, threshold and one point per
    budget, from [(budget, results.json dict)]."""
    out = []
    for budget, res in results:
        counted = [c for c in res.get("claims", []) if c.get("kind", "claim") == "claim"]
        for i, c in enumerate(counted):
            if i == len(out):
                out.append({"text": c.get("text", ""), "quantity": c.get("quantity") or "", "paper": None,
                            "threshold": None, "side": c.get("side"), "points": []})
            entry = out[i]
            verdict = c.get("verdict", "")
            c = _same_quantity(c, entry["quantity"])
            for key in ("paper", "threshold"):
                if entry[key] is None:
                    entry[key] = _num(c.get(key))
            entry["quantity"] = entry["quantity"] or c.get("quantity") or ""
            entry["points"].append({"budget": budget, "value": _num(c.get("value")), "interval": _interval(c.get("interval")),
                                    "seeds": c.get("seeds"), "verdict": verdict})
    for entry in out:
        pts = entry["points"]
        if entry["paper"] is not None:
            entry["trend"], entry["trend_text"] = trend(pts[0], pts[-1], entry["paper"])
        else:
            entry["trend"], entry["trend_text"] = trend(pts[0], pts[-1], entry["threshold"], "the rule's threshold",
                                                        entry.get("side"))
        entry["verdict_at_largest"] = pts[-1]["verdict"]
    return out


def curve_payload(exp, scale: str, results: list, folders: list, notes: str) -> dict:
    """curve.json's contents from [(budget, results.json dict)] and the budgets' folders."""
    claims = claim_points(results)
    top = results[-1][1]
    return {
        "id": exp.id, "paper": exp.paper, "item": exp.item, "expected": exp.expected, "scale": scale,
        "budgets": [b for b, _ in results], "notes": notes, "largest_budget": results[-1][0],
        "verdict_at_largest": top.get("verdict", ""), "state_at_largest": top.get("state", ""),
        "runs": [{"budget": b, "folder": str(f), "verdict": r.get("verdict", ""), "seeds_by_arm": r.get("seeds_by_arm", {}),
                  "seconds": r.get("run_seconds")} for (b, r), f in zip(results, folders)],
        "claims": claims, "trends": {w: sum(c["trend"] == w for c in claims) for w in TRENDS},
        "figures": [{"file": f"figures/claim-{i + 1}.png", "caption": f"claim {i + 1}: {c['text']}"} for i, c in enumerate(claims)],
    }


def curve_dir(root: Path, exp_id: str, scale: str) -> Path:
    return Path(root) / f"{exp_id}-{scale}-curve"


def run_curve(exp, scale: str, budgets: list, root, seeds: Optional[int] = None, curve_seeds: Optional[int] = None,
              jobs: int = 1, overrides: Optional[list] = None, log: Callable[[str], None] = print,
              max_seeds: Optional[int] = None) -> Path:
    """Run ``exp`` at every budget (module docstring), then write the curve folder; returns it."""
    from ..report.curves import write_curve
    from .runner import default_out, run_experiment

    root = Path(root)
    results, folders = [], []
    for b in budgets:
        top = b == budgets[-1] and curve_seeds is not None
        out = root / default_out(exp.id, scale, b).name
        log(f"[{exp.id}] budget ×{b:g}" + (f" ({curve_seeds} seed(s), none added)" if top else ""))
        cap = curve_seeds if top else (max_seeds if b != 1 else None)
        run_experiment(exp, scale, curve_seeds if top else seeds, str(out), log, overrides, jobs, b, max_seeds=cap)
        results.append((b, json.loads((out / "results.json").read_text())))
        folders.append(out)
    notes = (f"Budgets ×{', ×'.join(f'{b:g}' for b in budgets)} of the {scale} scale's training steps (epochs, warm-up, "
             "phase starts; evaluation and diagnostic intervals grow with them)."
             + (f" The largest budget ran {curve_seeds} seed(s) per arm, with no seeds added (--curve-seeds)." if curve_seeds else "")
             + (f" Seeds were added up to {max_seeds} per arm at the budgets "
                f"{'between ×1 and the largest' if curve_seeds else 'above ×1'} (--max-seeds)." if max_seeds else ""))
    folder = curve_dir(root, exp.id, scale)
    write_curve(curve_payload(exp, scale, results, folders, notes), folder)
    return folder
