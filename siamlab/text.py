"""Plain-text helpers shared by the command line, experiments and reports (no siamlab imports)."""
from __future__ import annotations

import re


def fmt_table(rows: list[list], header: list[str]) -> str:
    """``rows`` under ``header`` as aligned columns, with a dashed line below the header."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cols]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than letters, digits and ``._=-`` become ``_``."""
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    return s[:60] or "arm"
