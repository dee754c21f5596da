"""Print the README's generated tables: `python scripts/readme_tables.py methods|catalogue [RESULTS_ROOT]`
(catalogue: the table, the totals and a reading of every result that did not reproduce).
tests/test_readme_drift.py regenerates one catalogue row with :func:`catalogue` and compares it with the README's."""
import sys

from siamlab.methods import available


def methods() -> str:
    rows = ["| method | what it is | reference |", "| --- | --- | --- |"]
    for name, cls in available().items():
        rows.append(f"| `{name}` | {cls.description} | {cls.reference} |")
    return "\n".join(rows)


def catalogue(root: str = "runs/reproduce") -> str:
    from siamlab.experiments.catalogue import markdown_table, readings_markdown, totals_line

    return f"{markdown_table(root)}\n{totals_line(root)}\n{readings_markdown(root)}"


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "methods"
    print(methods() if what == "methods" else catalogue(sys.argv[2] if len(sys.argv) > 2 else "runs/reproduce"))
