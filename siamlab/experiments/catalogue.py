"""The README's experiment catalogue table, from the ``results.json`` files of smoke runs (budget 1) and the
``curve.json`` files of their scale curves (``<id>-smoke-curve/``, :mod:`.curves`)."""
from __future__ import annotations

import json
from pathlib import Path


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _smoke_results(root: Path) -> dict:
    found = {}
    for f in sorted(Path(root).glob("*/results.json")):
        res = _read(f)
        if isinstance(res, dict) and res.get("scale") == "smoke" and res.get("budget", 1) == 1:
            found[res.get("id")] = res
    return found


def curve_cells(root: Path, exp_id: str) -> list:
    """[verdict at the largest budget, trends of the counted claims] from ``<id>-smoke-curve/curve.json``; dashes
    when the experiment has no curve."""
    curve = _read(Path(root) / f"{exp_id}-smoke-curve" / "curve.json")
    if not isinstance(curve, dict) or not curve.get("claims"):
        return ["—", "—"]
    trends = curve.get("trends") or {}
    tally = ", ".join(f"{n} {w}" for w, n in trends.items() if n)
    return [f"×{curve.get('largest_budget', 0):g}: {curve.get('state_at_largest') or curve.get('verdict_at_largest', '')}", tally or "—"]


def _minutes(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    return f"{seconds / 60:.1f} min"


def claim_counts(res: dict) -> dict:
    """Counts of claim states (results.json ``counts``; derived from its claims for older files)."""
    if res.get("counts"):
        return res["counts"]
    from .outputs import counts

    claims = [{**c, "kind": c.get("kind", "claim")} for c in res.get("claims", [])]
    return counts(claims)


def summary_counts(found: dict) -> dict:
    """Totals over experiments: how many reproduced / not reproduced / undecidable / not run, and claims."""
    from .outputs import NOT_REPRODUCED, NOT_RUN, REPRODUCED, UNDECIDABLE

    exps = {w: 0 for w in (REPRODUCED, NOT_REPRODUCED, UNDECIDABLE, NOT_RUN)}
    claims = {w: 0 for w in (REPRODUCED, NOT_REPRODUCED, UNDECIDABLE, NOT_RUN, "sanity checks")}
    for res in found.values():
        state = res.get("state") or {True: REPRODUCED, False: NOT_REPRODUCED}.get(res.get("reproduced"), NOT_RUN)
        exps[state] = exps.get(state, 0) + 1
        k = claim_counts(res)
        for w in claims:
            claims[w] += k.get(w, 0)
    return {"experiments": exps, "claims": claims, "found": len(found)}


def seeds_cell(res: dict) -> str:
    """The starting seeds, and the range the arms reached when seeds were added (results.json ``seeds_by_arm``)."""
    start = res.get("seeds", "—")
    grown = [n for n in (res.get("seeds_by_arm") or {}).values() if isinstance(n, int)]
    if grown and max(grown) > (start if isinstance(start, int) else 0):
        return f"{start} → {max(grown)}" if min(grown) == max(grown) else f"{start} → {min(grown)}–{max(grown)}"
    return str(start)


def markdown_table(results_root) -> str:
    """One row per registered id: paper item, expected verdict, the smoke verdict observed, claims
    reproduced / not reproduced / undecidable, sanity checks passed, seeds (and how many were added), run time, and
    from its scale curve the verdict at the largest budget and the trends of the claims."""
    from .registry import all_experiments

    found = _smoke_results(Path(results_root))
    lines = ["| id | paper item | expected verdict | smoke verdict (observed) | claims ✓ / ✗ / undecidable | sanity checks | seeds "
             "| smoke run time | largest budget: verdict | trend of the claims |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in all_experiments():
        res = found.get(e.id)
        if res:
            k = claim_counts(res)
            tally = f"{k.get('reproduced', 0)} / {k.get('not reproduced', 0)} / {k.get('undecidable at this scale', 0)}"
            sanity = f"{k.get('sanity passed', 0)}/{k['sanity checks']}" if k.get("sanity checks") else "—"
            secs = res.get("run_seconds", res.get("seconds"))
            cells = [e.id, f"{e.paper} {e.item}", e.expected, res["verdict"], tally, sanity, seeds_cell(res), _minutes(secs)]
        else:
            cells = [e.id, f"{e.paper} {e.item}", e.expected, "not run yet", "—", "—", "—", "—"]
        cells += curve_cells(results_root, e.id)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def totals_line(results_root) -> str:
    """One sentence with the totals over the experiments found (and how many are not there yet)."""
    from .outputs import NOT_REPRODUCED, REPRODUCED, UNDECIDABLE
    from .registry import ids

    found = _smoke_results(Path(results_root))
    t = summary_counts(found)
    e, c = t["experiments"], t["claims"]
    missing = len(ids()) - t["found"]
    return (f"Experiments: {e[REPRODUCED]} reproduced, {e[NOT_REPRODUCED]} not reproduced, {e[UNDECIDABLE]} undecidable at "
            f"this scale" + (f", {missing} not run yet" if missing else "") + f" (of {len(ids())}). Claims: {c[REPRODUCED]} "
            f"reproduced, {c[NOT_REPRODUCED]} not reproduced, {c[UNDECIDABLE]} undecidable; {c['sanity checks']} sanity "
            "check(s) listed apart.\n")


def readings_markdown(results_root) -> str:
    """A bullet per smoke result that is not reproduced or undecidable: its verdict and the reading of its runs as
    :mod:`.papers.findings` holds it now (a results.json written before a reading was revised keeps the old text;
    the table must show the current one)."""
    from .papers.findings import SCALE, reading
    from .registry import all_experiments

    found = _smoke_results(Path(results_root))
    lines = []
    for e in all_experiments():
        res = found.get(e.id)
        text = reading(e.id, SCALE) if res and not res.get("reproduced") else ""
        if text:
            lines.append(f"- **{e.id}** ({res.get('state', res['verdict'])}): {text.split(': ', 1)[-1]}")
    return "\n".join(lines) + "\n"
