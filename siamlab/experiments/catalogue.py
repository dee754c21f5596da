"""The README's experiment catalogue table, from the ``results.json`` files of smoke runs."""
from __future__ import annotations

import json
from pathlib import Path


def _smoke_results(root: Path) -> dict:
    found = {}
    for f in sorted(Path(root).glob("*/results.json")):
        try:
            res = json.loads(f.read_text())
        except json.JSONDecodeError:
            continue
        if res.get("scale") == "smoke":
            found[res.get("id")] = res
    return found


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


def markdown_table(results_root) -> str:
    """One row per registered id: paper item, expected verdict, the smoke verdict observed, claims
    reproduced / not reproduced / undecidable, sanity checks passed, seeds and run time."""
    from .registry import all_experiments

    found = _smoke_results(Path(results_root))
    lines = ["| id | paper item | expected verdict | smoke verdict (observed) | claims ✓ / ✗ / undecidable | sanity checks | seeds | smoke run time |",
             "|---|---|---|---|---|---|---|---|"]
    for e in all_experiments():
        res = found.get(e.id)
        if res:
            k = claim_counts(res)
            tally = f"{k.get('reproduced', 0)} / {k.get('not reproduced', 0)} / {k.get('undecidable at this scale', 0)}"
            sanity = f"{k.get('sanity passed', 0)}/{k['sanity checks']}" if k.get("sanity checks") else "—"
            secs = res.get("run_seconds", res.get("seconds"))
            cells = [e.id, f"{e.paper} {e.item}", e.expected, res["verdict"], tally, sanity, res.get("seeds", "—"), _minutes(secs)]
        else:
            cells = [e.id, f"{e.paper} {e.item}", e.expected, "not run yet", "—", "—", "—", "—"]
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
    """A bullet per smoke result that is not reproduced or undecidable: its verdict and the reading of its runs
    (:mod:`.findings`), as report.html shows it."""
    from .registry import all_experiments

    found = _smoke_results(Path(results_root))
    lines = []
    for e in all_experiments():
        res = found.get(e.id)
        if res and res.get("reading"):
            text = res["reading"].split(": ", 1)[-1]
            lines.append(f"- **{e.id}** ({res.get('state', res['verdict'])}): {text}")
    return "\n".join(lines) + "\n"
