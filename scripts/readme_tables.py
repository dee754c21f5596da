"""Print the README's generated tables: `python scripts/readme_tables.py methods|catalogue|atlases [DIR...]`
(catalogue RESULTS_ROOT: the table, the totals and a reading of every result that did not reproduce; atlases
ATLAS_DIR...: a section per finished atlas — its grid, CPU time, verdict / kNN-gain table, the reason written before
the run and the reading after it — and a copy of its overview map in docs/atlas/).
tests/test_readme_drift.py regenerates one catalogue row with :func:`catalogue` and compares it with the README's."""
import json
import shutil
import sys
from pathlib import Path

from siamlab.methods import available

SHORT = {"not collapsed": "ok", "dimensional collapse": "dim", "collapsed": "coll", "collapsed (predictor output P)": "P",
         "diverged": "NaN"}


def methods() -> str:
    rows = ["| method | what it is | reference |", "| --- | --- | --- |"]
    for name, cls in available().items():
        rows.append(f"| `{name}` | {cls.description} | {cls.reference} |")
    return "\n".join(rows)


def catalogue(root: str = "runs/reproduce") -> str:
    from siamlab.experiments.catalogue import markdown_table, readings_markdown, totals_line

    return f"{markdown_table(root)}\n{totals_line(root)}\n{readings_markdown(root)}"


def _cell_text(cell: dict) -> str:
    mean = cell.get("mean") or {}
    gain = mean.get("knn_gain")
    verdict = SHORT.get(cell.get("verdict"), cell.get("verdict") or "—")
    return verdict + (f" {gain:+.1f}" if isinstance(gain, (int, float)) else "")


def atlas_section(folder: Path, docs: Path = Path("docs/atlas")) -> str:
    """One atlas's README section from its atlas.json; its reason and reading as siamlab.experiments.atlases holds
    them now (an atlas.json written before a reading was revised keeps the old text)."""
    from siamlab.experiments.atlases import ATLASES

    a = json.loads((Path(folder) / "atlas.json").read_text())
    shipped = ATLASES.get(a["name"])
    docs.mkdir(parents=True, exist_ok=True)
    image = docs / f"{a['name']}.png"
    shutil.copyfile(Path(folder) / "figures" / "overview.png", image)
    x, y = a["x"], a["y"]
    grid = {(c["i"], c.get("j")): c for c in a["cells"]}
    head = f"| {y['key']} \\ {x['key']} | " + " | ".join(x["texts"]) + " |"
    rows = [head, "|---" * (len(x["texts"]) + 1) + "|"]
    for j, yt in enumerate(y["texts"]):
        rows.append(f"| {yt} | " + " | ".join(_cell_text(grid[(i, j)]) if (i, j) in grid else "—"
                                              for i in range(len(x["texts"]))) + " |")
    cpu = a.get("cpu_seconds")
    lines = [f"#### {a['title']} — `siamlab atlas {a['name']}`", "",
             f"{len(a['cells'])} cells, {a['seeds']} seed each, {a['scale']} scale; the runs' CPU time "
             f"{cpu / 60:.0f} min ({cpu / 120:.0f} min on 2 cores), atlas.json written {a['finished']}. Each cell: the verdict "
             "(*ok*, *dim* dimensional collapse, *P* collapse of the predictor output, *coll* complete collapse) and the "
             "backbone's kNN gain over its random-init network, in points:", "", *rows, "",
             f"![{a['title']}]({image.as_posix()})", ""]
    if shipped is not None:
        lines += [f"*Why this grid* (written before the run): {shipped.reason}", ""]
        if shipped.reading:
            lines += [f"*Reading* (written after it, from atlas.json): {shipped.reading}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "methods"
    if what == "atlases":
        print("\n".join(atlas_section(Path(d)) for d in sys.argv[2:]))
    else:
        print(methods() if what == "methods" else catalogue(sys.argv[2] if len(sys.argv) > 2 else "runs/reproduce"))
