"""A self-contained HTML report of one experiment folder: offline, text escaped, images inlined.

``build_report(dir)`` reads ``results.json`` (written by ``siamlab reproduce``) and the PNGs it
lists, and writes ``report.html`` next to them. Every piece of text, including run labels and
error messages, goes through :func:`html.escape`; images are embedded as base64 data URIs, so the
file opens without network or neighbouring files.

Layout (:data:`CSS`, checked in headless Chromium at 420 and 1280 px by tests/test_report_layout.py): the page never
scrolls sideways — each table sits in a ``div.table-scroll`` that scrolls inside itself, long words wrap —, and a
figure is shown at its own pixel size where it fits (the plots are drawn so that their text is then at least 10 px
high, :mod:`siamlab.report.plots`), scaled down where it does not; a click opens it at full size over the page (a
hidden checkbox and its label: no script), and a second click closes it.

``results.json`` is input like any other: a file that does not have the layout ``siamlab reproduce``
writes is refused with one sentence naming the field, and only PNG files inside the experiment
folder are embedded. A figure path that is absolute, climbs out with ``..`` or is a symlink leading
outside the folder is refused, so a tampered ``results.json`` cannot copy ``/etc/passwd`` or an SSH
key into a report that is then shared.
"""
from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Optional

from ..errors import SiamlabError
from .files import write_result

TABLE_BG = "#e0f0ff"  # the results table's background (tests look for this colour in a screenshot)
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'

VERDICT_STYLE = {"reproduced": "#1b7f3b", "not reproduced": "#b3261e", "undecidable": "#5b5b8f", "not run": "#7a5c00"}

CSS = f"""
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
@media (max-width: 600px) {{ body {{ margin: 12px; }} }}
h1, h2, h3, p, li, figcaption {{ overflow-wrap: anywhere; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.verdict {{ display: inline-block; padding: 6px 12px; border-radius: 4px; color: white; font-weight: bold; }}
.table-scroll {{ max-width: 100%; overflow-x: auto; }}
table.results {{ border-collapse: collapse; background: {TABLE_BG}; font-size: 13px; }}
table.results td, table.results th {{ border: 1px solid #9ab; padding: 4px 8px; text-align: left; }}
table.runs {{ border-collapse: collapse; font-size: 12px; }}
table.runs td, table.runs th {{ border: 1px solid #ccc; padding: 2px 6px; }}
.ri td {{ font-style: italic; }}
.claim-ok {{ color: #1b7f3b; }} .claim-bad {{ color: #b3261e; }} .claim-none {{ color: #7a5c00; }} .claim-und {{ color: #5b5b8f; }}
figure {{ display: inline-block; margin: 8px; vertical-align: top; max-width: calc(100% - 16px); }}
figure img {{ max-width: 100%; height: auto; border: 1px solid #ddd; cursor: zoom-in; }}
input.zoom {{ display: none; }}
input.zoom:checked + label {{ position: fixed; inset: 0; z-index: 10; overflow: auto; padding: 16px;
  background: rgba(0, 0, 0, 0.85); }}
input.zoom:checked + label img {{ max-width: none; background: white; cursor: zoom-out; }}
pre {{ background: #f6f6f6; padding: 8px; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }}
"""


def _verdict_colour(text: str) -> str:
    for key in ("not reproduced", "not run", "undecidable", "reproduced"):
        if str(text).startswith(key):
            return VERDICT_STYLE[key]
    return "#555"


def _table(res: dict) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in res.get("headers", []))
    body = []
    for cells, row in zip(res.get("table", []), res.get("rows", [])):
        cls = ' class="ri"' if row.get("random_init") else ""
        tds = "".join(f"<td>{escape(str(c))}</td>" for c in cells)
        body.append(f"<tr{cls}>{tds}</tr>")
    return scrolling(f'<table class="results" id="results-table"><tr>{head}</tr>{"".join(body)}</table>')


def scrolling(table: str) -> str:
    """A table in a box that scrolls sideways by itself when the table is wider than the page."""
    return f'<div class="table-scroll">{table}</div>'


def _text(value) -> str:
    """A results.json value as text: null (or absent) as nothing, anything else (a hand-edited number, list) as str."""
    return "" if value is None else str(value)


def _claim_numbers(c: dict) -> str:
    """The claim's quantity against its threshold: value, 95 % interval, distance (positive on the claimed side)."""
    num = lambda v: f"{v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"  # noqa: E731
    if not isinstance(c.get("value"), (int, float)):
        return ""
    iv = c.get("interval") if isinstance(c.get("interval"), list) and len(c["interval"]) == 2 else None
    text = (f"{_text(c.get('quantity'))}: {num(c['value'])}" + (f" [{num(iv[0])}, {num(iv[1])}]" if iv else "")
            + f"; threshold {_text(c.get('side'))} {num(c.get('threshold'))}; distance {num(c.get('distance'))}"
            + f"; paper {num(c.get('paper'))}; {_text(c.get('seeds'))} seed(s)")
    return f'<br><small class="numbers">{escape(text)}</small>'


def _claim_items(claims: list) -> str:
    items = []
    for c in claims:
        ok = c.get("reproduced")
        cls = "claim-ok" if ok is True else "claim-bad" if ok is False else "claim-none"
        if _text(c.get("verdict")).startswith("undecidable"):
            cls = "claim-und"
        items.append(f'<li class="{cls}"><b>{escape(_text(c.get("verdict")))}</b>: {escape(_text(c.get("text")))}'
                     f'{_claim_numbers(c)}<br><small>{escape(_text(c.get("explanation")))}</small></li>')
    return "<ul>" + "".join(items) + "</ul>"


def _claims(res: dict) -> str:
    """The paper's claims (counted), then the sanity checks (never counted as reproductions)."""
    claims = res.get("claims", [])
    main = [c for c in claims if c.get("kind", "claim") == "claim"]
    sanity = [c for c in claims if c.get("kind") == "sanity"]
    k = res.get("counts") or {}
    n = {state: escape(_text(k.get(state, 0))) for state in ("reproduced", "not reproduced", "undecidable at this scale", "not run")}
    head = (f"<p>{n['reproduced']} reproduced &middot; {n['not reproduced']} not reproduced &middot; "
            f"{n['undecidable at this scale']} undecidable at this scale &middot; {n['not run']} not run</p>" if k else "")
    out = head + _claim_items(main)
    if sanity:
        out += ("<h3>Sanity checks</h3><p><small>These hold by construction (a property of the loss, not a finding); "
                "they check the measurement and are never counted as reproductions.</small></p>" + _claim_items(sanity))
    return out


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_path(folder: Path, name: str, src: Path) -> Path:
    """``folder / name`` when that file lies inside ``folder`` (symlinks resolved); else one sentence."""
    inside = folder.resolve()
    try:
        path = (folder / name).resolve()
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        path = Path("/")
    if Path(name).is_absolute() or not path.is_relative_to(inside):
        raise SiamlabError(f"{str(src)!r} lists the figure {name!r}, which lies outside the experiment folder "
                           f"{str(inside)!r}; siamlab embeds only files inside it, so fix the path or re-run "
                           "`siamlab reproduce` to rewrite results.json.")
    return path


def _reading(res: dict) -> str:
    """The scale argument and its evidence for a claim that did not reproduce (:mod:`siamlab.experiments.papers.findings`)."""
    text = str(res.get("reading") or "")
    return f"<h3>Why not at this scale</h3><p>{escape(text)}</p>" if text else ""


def figures_html(res: dict, folder: Path, src: Optional[Path] = None) -> str:
    """``res["figures"]`` ({file, caption, drawn, why}) as <figure> elements with the PNGs inlined (base64); only
    PNG files inside ``folder`` are embedded (:func:`figure_path`). ``src``: the file that listed them, for messages."""
    src = src if src is not None else folder / "results.json"
    out = []
    for i, f in enumerate(res.get("figures", [])):
        path = figure_path(folder, str(f.get("file", "")), src)
        cap = escape(str(f.get("caption", "")))
        data = path.read_bytes() if f.get("drawn") and path.is_file() else b""
        if data.startswith(PNG_SIGNATURE):
            b64 = base64.b64encode(data).decode("ascii")
            out.append(f'<figure><input type="checkbox" class="zoom" id="zoom-{i}"><label for="zoom-{i}" '
                       f'title="click: full size"><img alt="{cap}" src="data:image/png;base64,{b64}"></label>'
                       f'<figcaption>{cap}</figcaption></figure>')
        else:
            why = f.get("why") or ("not a PNG file" if data else "file missing")
            out.append(f"<p><i>Figure not drawn: {cap} ({escape(str(why))})</i></p>")
    return "".join(out) or "<p><i>No figures.</i></p>"


def _runs(res: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(r.get('label')))}</td><td>{escape(str(r.get('seed')))}</td><td>{escape(str(r.get('status')))}</td>"
        f"<td>{escape(str(r.get('seconds')))}</td><td>{escape(str(r.get('message', '')))}</td><td>{escape(str(r.get('run_dir', '')))}</td></tr>"
        for r in res.get("runs", []))
    return scrolling(f'<table class="runs"><tr><th>arm</th><th>seed</th><th>status</th><th>seconds</th><th>message</th>'
                     f'<th>folder</th></tr>{rows}</table>')


def _arms(res: dict) -> str:
    import yaml

    text = "\n".join(f"{a.get('label')}:\n  " + yaml.safe_dump(a.get("overrides"), sort_keys=False).replace("\n", "\n  ").rstrip()
                     for a in res.get("arms", []))
    return f"<pre>{escape(text)}</pre>"


def _budget(res: dict) -> str:
    b = res.get("budget", 1)
    return f", budget ×{b:g} (training steps)" if isinstance(b, (int, float)) and b != 1 else ""


def _seeds(res: dict) -> str:
    """The starting seeds, and how many the arms reached where seeds were added to decide a claim."""
    grown = [n for n in (res.get("seeds_by_arm") or {}).values() if isinstance(n, int)]
    start = res.get("seeds", "")
    if grown and isinstance(start, int) and max(grown) > start:
        return f"{start}, added up to {max(grown)} where more seeds could decide a claim (the table's seeds column)"
    return _text(start)


def render(res: dict, folder: Path, src: Path) -> str:
    verdict = _text(res.get("verdict"))
    title = f"{res.get('id', '?')}: {res.get('paper', '')} {res.get('item', '')}"
    scale_note = "tiny scale checks plumbing only: its verdicts say nothing about the paper." if res.get("scale") == "tiny" else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{VIEWPORT}<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p><b>Expected (paper):</b> {escape(str(res.get('expected', '')))}</p>
<p><b>Scale:</b> {escape(str(res.get('scale', '')))}{escape(_budget(res))} &middot; <b>seeds:</b> {escape(_seeds(res))}
 &middot; <b>time:</b> {escape(str(res.get('seconds', '')))} s (training runs: {escape(str(res.get('run_seconds', '')))} s) &middot; <b>finished:</b> {escape(str(res.get('finished', '')))}</p>
<p><span class="verdict" style="background:{_verdict_colour(verdict)}">{escape(verdict)}</span></p>
<p>{escape(scale_note)}</p>
<p>{escape(str(res.get('notes', '')))}</p>
<h2>Claims and verdict rules</h2>{_claims(res)}{_reading(res)}
<h2>Results</h2>{_table(res)}
<p><small>Observed values are mean ± sample std over seeds. Accuracy is weighted kNN top-1 on clean
backbone features unless the column says otherwise; papers mostly report linear-probe accuracy.</small></p>
<h2>Figures</h2>{figures_html(res, folder, src)}
<h2>Runs</h2>{_runs(res)}
<h2>Arms (config overrides)</h2>{_arms(res)}
</body></html>
"""


def build_report(dir) -> Path:
    """Write ``<dir>/report.html`` from ``<dir>/results.json`` and its figures; returns the path."""
    folder = Path(dir)
    src = folder / "results.json"
    if not src.is_file():
        raise SiamlabError(f"{str(folder)!r} has no results.json; run `siamlab reproduce ID --out {folder}` first.")
    try:
        res = json.loads(src.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SiamlabError(f"{str(src)!r} is not valid JSON; re-run `siamlab reproduce` to rewrite it.") from None
    check_layout(res, src)
    html = render(res, folder, src)
    out = folder / "report.html"
    write_result(out, html)
    return out


# The lists a report reads, and what each holds (``table``: a list of cells per row).
LAYOUT = {"headers": None, "table": list, "rows": dict, "claims": dict, "figures": dict, "runs": dict, "arms": dict}


def check_layout(res, src: Path) -> None:
    """One sentence naming the field when ``results.json`` does not have the layout ``siamlab reproduce`` writes."""
    def bad(what: str) -> SiamlabError:
        return SiamlabError(f"{str(src)!r} is not a siamlab results file: {what}; re-run `siamlab reproduce` to rewrite it.")

    if not isinstance(res, dict):
        raise bad(f"it holds a JSON {type(res).__name__}, not an object")
    for key, item_type in LAYOUT.items():
        value = res.get(key, [])
        if not isinstance(value, list):
            raise bad(f"{key!r} is a {type(value).__name__}, not a list")
        for i, item in enumerate(value):
            if item_type is not None and not isinstance(item, item_type):
                raise bad(f"{key}[{i}] is a {type(item).__name__}, not a{'n object' if item_type is dict else ' list'}")
    for i, arm in enumerate(res.get("arms", [])):
        if not isinstance(arm.get("overrides"), dict):
            raise bad(f"arms[{i}].overrides is not an object")
    if not isinstance(res.get("counts") or {}, dict):
        raise bad(f"'counts' is a {type(res['counts']).__name__}, not an object")
