"""Print the README's generated tables: `python scripts/readme_tables.py methods|catalogue [RESULTS_ROOT]`
(catalogue: the table, the totals and a reading of every result that did not reproduce)."""
import sys

from siamlab.methods import available


def methods() -> str:
    rows = ["| method | what it is | reference |", "| --- | --- | --- |"]
    for name, cls in available().items():
        rows.append(f"| `{name}` | {cls.description} | {cls.reference} |")
    return "\n".join(rows)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "methods"
    if what == "methods":
        print(methods())
    else:
        from siamlab.experiments.catalogue import markdown_table, readings_markdown, totals_line

        root = sys.argv[2] if len(sys.argv) > 2 else "runs/reproduce"
        print(markdown_table(root))
        print(totals_line(root))
        print(readings_markdown(root))
