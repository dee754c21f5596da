"""The README's catalogue table cannot drift from the code: gen-f2 (the cheapest experiment at smoke: points optimized
on the sphere, seconds) is run again, its row regenerated with scripts/readme_tables.py's code and compared with the
README's row, cell by cell, all but the run time (a wall-clock figure). The header is compared as well."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from siamlab.experiments import get, run_experiment

ROOT = Path(__file__).resolve().parents[1]
EXP = "gen-f2"


def _cells(line: str) -> list:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _row(text: str, first: str) -> list:
    rows = [line for line in text.splitlines() if line.startswith(f"| {first} |")]
    assert len(rows) == 1, f"{len(rows)} rows start with {first!r}"
    return _cells(rows[0])


def test_readme_catalogue_row_is_what_the_code_gives(tmp_path):
    run_experiment(get(EXP), "smoke", out=str(tmp_path / f"{EXP}-smoke"), log=lambda s: None, jobs=1)
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    generated, readme = tables.catalogue(str(tmp_path)), (ROOT / "README.md").read_text()
    header = _row(generated, "id")
    assert _row(readme, "id") == header, "the README's catalogue columns differ from scripts/readme_tables.py's"
    keep = [i for i, h in enumerate(header) if h != "smoke run time"]
    mine, theirs = _row(generated, EXP), _row(readme, EXP)
    assert [mine[i] for i in keep] == [theirs[i] for i in keep], (
        "README's catalogue row differs from the code's: regenerate the table with `python scripts/readme_tables.py "
        "catalogue DIR` (see the README's catalogue section)")
