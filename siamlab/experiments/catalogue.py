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


def markdown_table(results_root) -> str:
    """id | paper item | expected verdict | smoke verdict observed | smoke run time, for every registered id."""
    from .registry import all_experiments

    found = _smoke_results(Path(results_root))
    lines = ["| id | paper item | expected verdict | smoke verdict (observed) | smoke run time |", "|---|---|---|---|---|"]
    for e in all_experiments():
        res = found.get(e.id)
        verdict = res["verdict"] if res else "not run yet"
        secs = res.get("run_seconds", res.get("seconds")) if res else None
        cells = [e.id, f"{e.paper} {e.item}", e.expected, verdict, _minutes(secs)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
