"""The reading of the smoke runs (siamlab/experiments/papers/findings.py): shown only where a result did not reproduce,
only at the scale it was written for, escaped in the report, listed in the README's catalogue section."""
from __future__ import annotations

import json

from siamlab.experiments.papers import findings
from siamlab.experiments.catalogue import readings_markdown
from siamlab.experiments.registry import ids
from siamlab.report.html import build_report
from test_report import EVIL, fake_results


def test_every_reading_names_a_registered_experiment_and_a_claims_numbers():
    assert set(findings.SMOKE) <= set(ids())
    for exp_id, text in findings.SMOKE.items():
        assert len(text) > 80 and "95 % interval" in text and "rule" in text, exp_id  # value, interval and threshold


def test_a_reading_belongs_to_its_scale_only():
    assert findings.reading("zhang-t4", "smoke").startswith(f"Reading of the smoke runs of {findings.DATE}")
    assert findings.reading("zhang-t4", "paper") == "" and findings.reading("zhang-t4", "tiny") == ""
    assert findings.reading("no-such-experiment", "smoke") == ""


def test_report_shows_the_reading_escaped_and_only_when_present(tmp_path):
    folder = fake_results(tmp_path / "r")
    assert "Why not at this scale" not in build_report(folder).read_text()
    res = json.loads((folder / "results.json").read_text())
    res.update(reproduced=False, state="not reproduced", reading=f"Reading of the smoke runs: {EVIL} happened")
    (folder / "results.json").write_text(json.dumps(res))
    html = build_report(folder).read_text()
    assert "Why not at this scale" in html and "<script>" not in html and "&lt;script&gt;" in html


def test_readme_section_lists_the_current_readings(tmp_path, monkeypatch):
    """The README takes each reading from findings.py as it is now, not the text a results.json was written with."""
    monkeypatch.setattr(findings, "SMOKE", {"zhang-t2": "P stays spread.", "zhang-t4": "never shown: it reproduced."})
    folder = fake_results(tmp_path / "zhang-t2-smoke")
    res = json.loads((folder / "results.json").read_text())
    res.update(reproduced=False, state="not reproduced", reading="Reading of the smoke runs of x (written after them): stale.")
    (folder / "results.json").write_text(json.dumps(res))
    other = fake_results(tmp_path / "zhang-t4-smoke")  # reproduced: no reading, no bullet
    res = json.loads((other / "results.json").read_text())
    (other / "results.json").write_text(json.dumps({**res, "id": "zhang-t4", "reproduced": True}))
    text = readings_markdown(tmp_path)
    assert text.strip() == "- **zhang-t2** (not reproduced): P stays spread."
