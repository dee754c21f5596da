"""Verdicts, the results table (CSV + Markdown), results.json, figures and the HTML report."""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

from . import gates, measures
from .papers.findings import reading
from .results import Results, mean_std
from .spec import Column, merge
from .stats import Verdict, as_verdict

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
UNDECIDABLE = "undecidable at this scale"
SANITY_PASSED, SANITY_FAILED, SANITY_NOT_RUN = "sanity check passed", "sanity check failed", "sanity check not run"
RANDOM_INIT = "random init"
STATES = (REPRODUCED, NOT_REPRODUCED, UNDECIDABLE, NOT_RUN)


# Beside every arm of every table (ISSUE 19.3): how far the run is from complete collapse, and its dimensions.
COLLAPSE_COLUMNS = [Column("collapse_margin", "collapse margin (decades above the threshold; < 0 collapsed)", 2),
                    Column("erank", "effective rank of clean z", 1),
                    Column("dim_collapse", "dimensional collapse (run verdict, fraction of seeds)", 2)]


def columns(exp) -> list:
    """The experiment's columns, then the collapse columns it does not list itself (none when no arm trains a
    network: GEN Fig. 2's points, whose runs are functions)."""
    keys = {c.key for c in exp.columns}
    if all(a.run is not None for a in exp.arms):
        return list(exp.columns)
    return list(exp.columns) + [c for c in COLLAPSE_COLUMNS if c.key not in keys]


def word(ok, kind: str = "claim") -> str:
    """The state of a claim from its rule's first output (True, False, None or gates.UNDECIDABLE)."""
    if kind == "sanity":
        return SANITY_PASSED if ok is True else SANITY_FAILED if ok is False else SANITY_NOT_RUN
    return REPRODUCED if ok is True else NOT_REPRODUCED if ok is False else UNDECIDABLE if ok == gates.UNDECIDABLE else NOT_RUN


def _number(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def claim_entry(c, v: Verdict) -> dict:
    """A claim's entry of results.json ("claims"), the one place a rule's Verdict becomes a dict. Keys: text, arms,
    kind, reproduced, verdict, explanation; and the numbers behind it — ``value`` (the claim's quantity: its mean
    over seeds), ``threshold`` (what the rule compares it with; ``upper`` too for a band, ``side`` "above" /
    "below" / "inside"), ``interval`` ([lo, hi], its 95 % Student-t interval over seeds, null below two seeds),
    ``distance`` (value's signed distance to its threshold, positive on the claimed side), ``paper`` (the paper's
    value of the quantity, or null), ``quantity`` (what the value is), ``seeds`` (seeds it was decided with) and
    ``more_seeds_could_decide``; ``parts``, for a claim made of several tests, the same numbers for each test (a
    scale curve follows one quantity across budgets even when another test decides the claim at another budget)."""
    kind = getattr(c, "kind", "claim")
    ok = v.state
    return {"text": c.text, "arms": list(c.arms), "kind": kind, "reproduced": ok if isinstance(ok, bool) else None,
            "verdict": word(ok, kind), "explanation": v.why, **_part(v), "distance": _number(v.distance),
            "more_seeds_could_decide": bool(v.more_seeds_could_decide), "parts": [_part(p) for p in _leaves(v)]}


def _leaves(v: Verdict) -> list:
    """The single tests under a compound verdict (none for a single test)."""
    if not v.parts:
        return []
    out = []
    for p in v.parts:
        out += _leaves(p) or [p]
    return out


def _part(v: Verdict) -> dict:
    """One test's numbers: value, threshold (and upper bound), side, paper value, seeds, 95 % interval."""
    return {"quantity": v.quantity, "value": _number(v.value), "threshold": _number(v.threshold),
            "upper": _number(v.upper), "side": v.side or None, "paper": _number(v.paper), "seeds": int(v.seeds),
            "interval": None if v.interval is None else [_number(v.interval[0]), _number(v.interval[1])]}


def evaluate_claims(exp, results: Results) -> list[dict]:
    out = []
    for c in exp.claims:
        try:
            v = as_verdict(c.rule(results))
        except (ArithmeticError, ValueError, TypeError) as err:  # a value the rule cannot use
            v = Verdict(None, f"rule could not be evaluated: {type(err).__name__}: {err}")
        out.append(claim_entry(c, v))
    return out


def counts(claims: list[dict]) -> dict:
    """How many claims (kind "claim") are in each state, and how many sanity checks passed."""
    main = [c for c in claims if c.get("kind", "claim") == "claim"]
    sanity = [c for c in claims if c.get("kind") == "sanity"]
    out = {"claims": len(main), **{s: sum(c["verdict"] == s for c in main) for s in STATES}}
    out.update({"sanity checks": len(sanity), "sanity passed": sum(c["verdict"] == SANITY_PASSED for c in sanity)})
    return out


def overall(claims: list[dict], results: Results) -> tuple:
    """(state, verdict text): any claim fails → False; all hold → True; some undecidable (none failed) →
    gates.UNDECIDABLE; else None (not run). Sanity checks are not counted."""
    k = counts(claims)
    n, held, failed, und = k["claims"], k[REPRODUCED], k[NOT_REPRODUCED], k[UNDECIDABLE]
    sanity = f"; sanity checks {k['sanity passed']}/{k['sanity checks']} passed" if k["sanity checks"] else ""
    if failed:
        return False, f"{NOT_REPRODUCED} ({failed}/{n} claims failed, {held} held, {und} undecidable{sanity})"
    if held == n and n:
        return True, f"{REPRODUCED} ({held}/{n} claims{sanity})"
    if und:
        return gates.UNDECIDABLE, f"{UNDECIDABLE} ({held}/{n} claims held, {und} undecidable, {n - held - und} not run{sanity})"
    missing = sorted({r.message for r in results.records if not r.ran and r.message})
    why = "; ".join(missing[:3]) or "a diagnostic was not logged"
    return None, f"{NOT_RUN} ({held}/{n} claims decided; {why})"


def judged_by(arm, claim_arms: list) -> bool:
    """A claim judges an arm named in its list, every arm ("*"), or the arms of a group ("group:<name>")."""
    return arm.label in claim_arms or "*" in claim_arms or f"group:{arm.group}" in claim_arms


def row_verdict(arm, claims: list[dict], results: Results) -> str:
    label = arm.label
    if not results.ran(label):
        return NOT_RUN
    mine = [c for c in claims if judged_by(arm, c["arms"]) and c.get("kind", "claim") == "claim"]
    if not mine:
        sanity = [c for c in claims if judged_by(arm, c["arms"])]
        return "sanity check only" if sanity else NOT_RUN
    states = [c["verdict"] for c in mine]
    for s in (NOT_REPRODUCED, UNDECIDABLE, NOT_RUN):
        if s in states:
            return s
    return REPRODUCED


def _cell(stats: dict, digits: int) -> str:
    if stats["mean"] is None:
        return "—"
    if stats["n"] > 1:
        return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f}"


def _paper(v) -> str:
    if v is None or v == "":
        return "—"
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def random_init_rows(exp, results: Results) -> list[dict]:
    """One random-init row per distinct (dataset, backbone) among the arms; eval measures only."""
    groups = {}
    for arm in results.arms:
        for r in results.runs(arm.label):
            if r.ran and r.summary.get("random_init"):
                key = (r.summary.get("dataset", ""), arm.group)
                groups.setdefault(key, []).append(r)
    rows = []
    for (dataset, group), recs in groups.items():
        label = RANDOM_INIT if len(groups) == 1 else f"{RANDOM_INIT} ({group or dataset})"
        cells = {}
        for col in columns(exp):
            vals = [v for v in (measures.random_init_eval(r, col.key) for r in recs) if v is not None]
            m, s = mean_std(vals)
            cells[col.key] = {"mean": m, "std": s, "n": len(vals), "values": vals}
        rows.append({"label": label, "paper": {}, "observed": cells, "verdict": "reference (untrained network)", "random_init": True})
    if not rows:  # nothing ran: keep the row so every table shows it
        rows.append({"label": RANDOM_INIT, "paper": {}, "observed": {c.key: {"mean": None, "std": None, "n": 0, "values": []} for c in columns(exp)},
                     "verdict": "reference (not evaluated: no run completed)", "random_init": True})
    return rows


def table_rows(exp, results: Results, claims: list[dict]) -> list[dict]:
    rows = random_init_rows(exp, results)
    for arm in results.arms:
        cells = {c.key: results.stats(arm.label, c.key) for c in columns(exp)}
        status = sorted({r.status if r.ran else f"{r.status}: {r.message}" for r in results.runs(arm.label)})
        rows.append({"label": arm.label, "paper": dict(arm.paper), "observed": cells, "x": arm.x, "seeds": len(results.runs(arm.label)),
                     "verdict": row_verdict(arm, claims, results), "status": ", ".join(status), "random_init": False})
    return rows


def headers(exp) -> list[str]:
    h = ["arm"]
    for c in columns(exp):
        h += [f"{c.title} (paper)", f"{c.title} (observed)"]
    return h + ["verdict", "seeds", "runs"]


def row_cells(exp, row: dict) -> list[str]:
    cells = [row["label"]]
    for c in columns(exp):
        cells += [_paper(row["paper"].get(c.key)), _cell(row["observed"][c.key], c.digits)]
    return cells + [row["verdict"], str(row.get("seeds", "")), row.get("status", "")]


def markdown(exp, rows: list[dict]) -> str:
    h = headers(exp)
    lines = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
    lines += ["| " + " | ".join(_md(c) for c in row_cells(exp, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "—" if v is None else f"{v:.3g}"


def _md(cell) -> str:
    return str(cell).replace("|", "\\|")


def claims_markdown(claims: list[dict]) -> str:
    """Each claim with its quantity, value, 95 % interval, threshold and the value's distance to it (positive on
    the claimed side), the paper's value, the seeds it was decided with and whether more could decide it."""
    h = ["claim", "kind", "verdict", "quantity", "value", "95 % interval", "threshold", "distance", "paper", "seeds",
         "more seeds could decide"]
    lines = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
    for c in claims:
        iv = c.get("interval")
        thr = _num(c.get("threshold")) if c.get("side") != "inside" else f"[{_num(c.get('threshold'))}, {_num(c.get('upper'))}]"
        cells = [c["text"], c.get("kind", "claim"), c["verdict"], c.get("quantity") or "—", _num(c.get("value")),
                 "—" if not iv else f"[{_num(iv[0])}, {_num(iv[1])}]", f"{c.get('side') or ''} {thr}".strip(),
                 _num(c.get("distance")), _num(c.get("paper")), c.get("seeds", 0), "yes" if c.get("more_seeds_could_decide") else "no"]
        lines.append("| " + " | ".join(_md(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(exp, rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    h = ["arm"]
    for c in columns(exp):
        h += [f"{c.key}_paper", f"{c.key}_mean", f"{c.key}_std", f"{c.key}_n"]
    w.writerow(h + ["verdict", "seeds", "runs"])
    for r in rows:
        line = [r["label"]]
        for c in columns(exp):
            o = r["observed"][c.key]
            line += [_paper(r["paper"].get(c.key)), "" if o["mean"] is None else o["mean"], "" if o["std"] is None else o["std"], o["n"]]
        w.writerow(line + [r["verdict"], r.get("seeds", ""), r.get("status", "")])
    return buf.getvalue()


def draw_figures(exp, results: Results, out_dir: Path) -> list[dict]:
    from ..report import plots

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    drawn = []
    for f in exp.figures:
        path = fig_dir / f.file
        try:
            ok = plots.draw(f.kind, results, f.params, path, out_dir)
            drawn.append({"file": f"figures/{f.file}", "caption": f.caption, "drawn": bool(ok),
                          "why": "" if ok else "no data to plot (runs missing or diagnostic not logged)"})
        except (ValueError, KeyError, TypeError, ArithmeticError) as err:
            drawn.append({"file": f"figures/{f.file}", "caption": f.caption, "drawn": False, "why": f"{type(err).__name__}: {err}"})
    return drawn


def fewest_seeds(results: Results, claim_arms: list) -> int:
    """The fewest seeds among the arms a claim judges (how many seeds it was decided on, when its rule does not say)."""
    counts = [len(results.runs(a.label)) for a in results.arms if judged_by(a, claim_arms)]
    return min(counts, default=0)


def write_all(exp, results: Results, scale: str, n_seeds: int, out_dir: Path, seconds: float, extra: dict = None) -> dict:
    """Every output file; ``extra`` (the runner's budget and seed rounds) is added to results.json as it is."""
    from ..report.files import write_result
    from ..report.html import build_report

    claims = evaluate_claims(exp, results)
    for c in claims:
        c["seeds"] = c.get("seeds") or fewest_seeds(results, c["arms"])  # a rule that does not say (a (state, why) tuple)
    ok, verdict = overall(claims, results)
    rows = table_rows(exp, results, claims)
    figures = draw_figures(exp, results, out_dir)
    payload = {
        "id": exp.id, "paper": exp.paper, "item": exp.item, "expected": exp.expected,
        "scale": scale, "seeds": n_seeds, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(seconds, 1), "run_seconds": round(sum(r.seconds for r in results.records), 1),
        "reproduced": ok if isinstance(ok, bool) else None, "state": word(ok), "verdict": verdict, "claims": claims,
        "counts": counts(claims),
        "columns": [{"key": c.key, "title": c.title} for c in columns(exp)],
        "headers": headers(exp), "table": [row_cells(exp, r) for r in rows], "rows": rows,
        "runs": [{"label": r.label, "seed": r.seed, "status": r.status, "message": r.message,
                  "run_dir": r.run_dir, "seconds": round(r.seconds, 1)} for r in results.records],
        "figures": figures, "notes": exp.notes.get(scale, ""), "reading": reading(exp.id, scale) if ok is not True else "",
        "arms": [{"label": a.label, "overrides": merge(a.overrides, a.scale_overrides.get(scale, {}))} for a in results.arms],
        **(extra or {}),
    }
    write_result(out_dir / "results.json", json.dumps(payload, indent=2, default=str) + "\n")
    write_result(out_dir / "results.md", markdown(exp, rows) + "\n" + claims_markdown(claims))
    write_result(out_dir / "results.csv", csv_text(exp, rows))
    build_report(out_dir)
    return payload
