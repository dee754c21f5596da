"""Reports read on a phone and on a laptop: report.html (experiments), diagnosis.html (siamlab diagnose) and
atlas.html (siamlab atlas).

The page never scrolls sideways (tables scroll inside their own box, long words wrap); figures are drawn so that
their text is at least 10 px high at their own size and are shown at that size at 1280 px; a click opens a figure
at full size. The HTML/CSS that makes this hold is checked always; the layout itself in headless Chromium at 420
and 1280 px when it is installed (``scripts/install.sh --test`` installs it).
"""
from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from siamlab.interop import page
from siamlab.report import plots
from siamlab.report.html import CSS, build_report
from siamlab.text import slug

from test_atlas import fake_atlas
from test_report import _chromium, fake_results

MIN_TEXT_PX = 10
CONTENT_PX = 1200  # body max-width (report/html.py CSS): the width a figure has at 1280 px


def wide_report(folder: Path) -> Path:
    """An experiment report with a table far wider than a phone, a long unbroken path, and a 1000 px figure."""
    fake_results(folder)
    res = json.loads((folder / "results.json").read_text())
    res["headers"] = [f"a long column header number {i}" for i in range(12)]
    res["table"] = [[f"cell {r}.{i} 0.{r}{i}" for i in range(12)] for r in range(3)]
    res["rows"] = [{"label": f"arm {r}", "random_init": r == 0} for r in range(3)]
    res["runs"][0]["run_dir"] = "runs/" + "a-very-long-folder-name-without-spaces-" * 4
    fig = matplotlib.figure.Figure(figsize=(10, 3))
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    fig.savefig(folder / "figures" / "wide.png", dpi=100)
    res["figures"].append({"file": "figures/wide.png", "caption": "wide", "drawn": True})
    (folder / "results.json").write_text(json.dumps(res))
    return build_report(folder)


def report_page(which: str, tmp_path: Path) -> Path:
    if which == "report":
        return wide_report(tmp_path / "r")
    if which == "atlas":
        from siamlab.report.atlas import write_atlas

        return write_atlas(fake_atlas(7, 5), tmp_path / "a")
    return page.write_page(fake_diagnosis(), tmp_path)


def fake_diagnosis() -> dict:
    rng = np.random.default_rng(0)
    metrics = {f"{m}_{f}": float(rng.uniform(0, 1)) for f in ("backbone", "projector") for m in page.FEATURE_METRICS}
    net = {"metrics": metrics, "spectra": {"backbone": sorted(rng.uniform(0, 1, 64))[::-1], "projector": sorted(rng.uniform(0, 1, 32))[::-1]},
           "dims": {"backbone": 64, "projector": 32}, "verdict": {"verdict": "not collapsed", "rule": "the rule", "std_scaled": 0.5}}
    return {"model": "/a/long/path/" + "without-any-space-" * 6 + "backbone.pt", "layout": "siamlab export",
            "dataset": "digits", "num_classes": 10, "train_samples": 256, "test_samples": 128, "output": "projector",
            "networks": {"random_init": net, "trained": net}}


# --- the HTML and CSS ---------------------------------------------------------------------------------------
def _rules(selector: str) -> str:
    m = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert m, f"no CSS rule for {selector}"
    return m.group(1)


@pytest.mark.parametrize("which", ["report", "diagnosis", "atlas"])
def test_tables_scroll_in_their_own_box_and_figures_open_full_size(tmp_path, which):
    path = report_page(which, tmp_path)
    text = path.read_text()
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in text
    tables = re.findall(r"(.{0,30})<table", text)
    assert tables and all(t.endswith('<div class="table-scroll">') for t in tables), tables  # every table in a box
    assert "overflow-x: auto" in _rules(".table-scroll") and "max-width: 100%" in _rules(".table-scroll")
    img = _rules("figure img")
    assert "max-width: 100%" in img and "height: auto" in img  # scaled down only where it does not fit
    assert "max-width: calc(100% - 16px)" in _rules("figure")
    assert "overflow-wrap: anywhere" in _rules("h1, h2, h3, p, li, figcaption")
    figures = re.findall(r'<figure><input type="checkbox" class="zoom" id="(zoom-\d+)"><label for="(zoom-\d+)"[^>]*><img ', text)
    assert len(figures) == text.count("<figure>") >= 2 and all(a == b for a, b in figures)
    assert len({a for a, _ in figures}) == len(figures)  # one id per figure
    full = _rules("input.zoom:checked + label")
    assert "position: fixed" in full and "inset: 0" in full and "overflow: auto" in full
    assert "max-width: none" in _rules("input.zoom:checked + label img")  # its own pixel size
    assert "display: none" in _rules("input.zoom")


def _figures_drawn(monkeypatch, module, draw) -> list:
    """(width px, smallest text px) of each figure ``draw()`` saves through ``module.save_figure``."""
    seen = []
    original = module.save_figure

    def record(fig, path, dpi=100):
        original(fig, path, dpi=dpi)  # draws it: tick labels exist from here on
        sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
        seen.append((fig.get_figwidth() * dpi, min(sizes) * dpi / 72))

    monkeypatch.setattr(module, "save_figure", record)
    draw()
    return seen


class FakeResults:
    """What the plot functions read of an experiment's results, for ``n`` arms."""

    def __init__(self, n: int):
        self.names = [f"arm number {i}" for i in range(n)]

    def labels(self):
        return self.names

    def stats(self, lab, m):
        return {"mean": 1.0 + self.names.index(lab), "std": 0.1}

    def mean(self, lab, m):
        return 0.5

    def series(self, lab, m):
        return [[(e, float(e) + self.names.index(lab)) for e in range(5)]]


def test_every_figure_fits_1280_px_with_text_of_at_least_10_px(tmp_path, monkeypatch):
    (tmp_path / "probe").mkdir()
    for lab in FakeResults(7).labels():
        np.savez(tmp_path / "probe" / f"{slug(lab)}-s0.npz", w=np.eye(4), eig=np.arange(4.0)[::-1])
    many = FakeResults(20)  # bars: 20 arms would be 22 in wide uncapped
    draws = [lambda: plots.draw("curve", FakeResults(4), {"measure": "m"}, tmp_path / "c.png", tmp_path),
             lambda: plots.draw("bars", many, {"measures": ["a", "b"]}, tmp_path / "b.png", tmp_path),
             lambda: plots.draw("trajectory", FakeResults(4), {"x": "a", "y": "b"}, tmp_path / "t.png", tmp_path),
             lambda: plots.draw("eta_scan", FakeResults(3), {}, tmp_path / "e.png", tmp_path),
             lambda: plots.draw("heatmap", FakeResults(7), {"keys": ["w"]}, tmp_path / "h.png", tmp_path),
             lambda: plots.draw("spectrum", FakeResults(7), {"keys": ["eig"]}, tmp_path / "s.png", tmp_path)]
    seen = []
    for draw in draws:
        seen += _figures_drawn(monkeypatch, plots, draw)
    result = fake_diagnosis()
    seen += _figures_drawn(monkeypatch, page, lambda: page.bars_plot(result, tmp_path / "m.png"))
    seen += _figures_drawn(monkeypatch, page, lambda: page.spectrum_plot(result, tmp_path / "sp.png"))
    from siamlab.report import atlas

    wide = fake_atlas(8, 6)  # the largest shipped grid is 7 × 3, 6 × 4
    for key in ("overview", "verdict", "knn_gain", "rankme_projector"):
        seen += _figures_drawn(monkeypatch, atlas, lambda: atlas.draw_overview(wide, tmp_path / "o.png") if key == "overview"
                               else atlas.draw(wide, key, tmp_path / f"{key}.png"))
    assert len(seen) == 12
    for width, text_px in seen:
        assert width <= CONTENT_PX - 20 and text_px >= MIN_TEXT_PX, (width, text_px)


# --- the layout, in headless Chromium ----------------------------------------------------------------------
PROBE = """<script>addEventListener('load', () => {
  const d = document.documentElement, out = {page: d.scrollWidth, view: d.clientWidth, tables: [], imgs: [], zoomed: null};
  document.querySelectorAll('.table-scroll').forEach(t => out.tables.push([t.scrollWidth, t.clientWidth, t.getBoundingClientRect().right]));
  document.querySelectorAll('figure img').forEach(i => out.imgs.push([i.naturalWidth, i.getBoundingClientRect().width - 2]));
  const boxes = [...document.querySelectorAll('input.zoom')];
  const box = boxes.reduce((a, b) => a.nextElementSibling.querySelector('img').naturalWidth >=
                                     b.nextElementSibling.querySelector('img').naturalWidth ? a : b);  // the widest
  box.checked = true;  // what a click on the figure does (its label toggles the checkbox)
  const img = box.nextElementSibling.querySelector('img'), label = box.nextElementSibling.getBoundingClientRect();
  out.zoomed = [img.naturalWidth, img.getBoundingClientRect().width - 2, label.width, label.height];
  parent.document.body.setAttribute('data-layout', JSON.stringify(out));
});</script>"""


def layout(page_html: Path, width: int, tmp_path: Path) -> dict:
    """Measurements of ``page_html`` laid out ``width`` px wide (in an iframe: headless windows have a minimum width)."""
    inner = page_html.read_text().replace("</body>", PROBE + "</body>")
    outer = tmp_path / f"probe-{page_html.stem}-{width}.html"
    outer.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe style="border:0" width="{width}" height="900" '
                     f'srcdoc="{html.escape(inner, quote=True)}"></iframe></body></html>')
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--dump-dom", f"file://{outer}"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-layout="([^"]*)"', dom)
    assert m, dom[-500:]
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.skipif(_chromium() is None, reason="chromium not found (scripts/install.sh --test installs it)")
@pytest.mark.parametrize("which", ["report", "diagnosis", "atlas"])
def test_phone_and_laptop_widths_in_headless_chromium(tmp_path, which):
    path = report_page(which, tmp_path)
    phone = layout(path, 420, tmp_path)
    view = phone["view"]  # 420 px less a vertical scroll bar
    assert 400 <= view <= 420 and phone["page"] <= view  # the page does not scroll sideways ...
    assert all(right <= view for _, _, right in phone["tables"])
    if which == "report":
        assert phone["tables"][0][0] > phone["tables"][0][1]  # ... the wide table scrolls inside its box
    assert all(shown < view for _, shown in phone["imgs"])  # figures scaled to the width
    assert any(shown < natural for natural, shown in phone["imgs"])
    natural, shown, box_w, box_h = phone["zoomed"]
    assert shown == natural > view and box_w == view and box_h == 900  # a click: full size, over the whole page
    laptop = layout(path, 1280, tmp_path)
    assert 1260 <= laptop["view"] <= 1280 and laptop["page"] <= laptop["view"]
    assert all(shown == natural for natural, shown in laptop["imgs"])  # own size: text >= 10 px (figures test)
