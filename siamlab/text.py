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
    """A folder name for an arm label: symbols are spelled out (✓ → yes, τ → tau), each run of characters
    other than letters, digits and ``._=-`` becomes one ``_`` (``_`` at the ends is dropped), and where a
    character other than a space was replaced so, or the name was cut at 60 characters, a short hash of the
    full label is appended (ZHANG Table 4's "o_e ✓ r_e ✗" and "o_e ✗ r_e ✓" must not share a folder).

    Two labels therefore share a slug only when they differ in spaces and underscores alone (``"a b"``,
    ``"a  b"``, ``"a_b"`` and ``" a_b_"`` all give ``a_b``), in a symbol against its spelling (``τ`` /
    ``tau``), or by a collision of the 6-hex-digit hash. Run folders of experiments already run keep their
    names this way; the runner refuses an experiment whose arms share a folder."""
    spelled = "".join(_SYMBOLS.get(ch, ch) for ch in text)
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", spelled).strip("_")
    lossy = re.sub(r"[^A-Za-z0-9._=-]", "", spelled.replace(" ", "")) != spelled.replace(" ", "") or len(s) > 60
    s = s[:60] or "arm"
    if lossy:
        s += "-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return s
