"""Plain-text helpers shared by the command line, experiments and reports (no siamlab imports)."""
from __future__ import annotations

import hashlib
import re


def fmt_table(rows: list[list], header: list[str]) -> str:
    """``rows`` under ``header`` as aligned columns, with a dashed line below the header."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cols]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_SYMBOLS = {"✓": "yes", "✗": "no", "τ": "tau", "η": "eta", "λ": "lambda", "→": "to", "−": "-", "≥": "ge", "≤": "le",
            "+": "plus", "·": "x", "√": "sqrt"}


def slug(text: str) -> str:
    """A folder name for an arm label, unique per label: symbols are spelled out (✓ → yes, τ → tau) and,
    where anything else had to be dropped or cut, a short hash of the full label is appended (ZHANG Table 4's
    "o_e ✓ r_e ✗" and "o_e ✗ r_e ✓" must not share a folder)."""
    spelled = "".join(_SYMBOLS.get(ch, ch) for ch in text)
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", spelled).strip("_")
    lossy = re.sub(r"[^A-Za-z0-9._=-]", "", spelled.replace(" ", "")) != spelled.replace(" ", "") or len(s) > 60
    s = s[:60] or "arm"
    if lossy:
        s += "-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return s
