"""HTML report (escaping, offline, embedded images, rendered table in headless Chromium), plot maths, probes."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from siamlab.errors import SiamlabError
from siamlab.experiments.probes import eigen_clustered, gen_lambda, matrix_stats, mean_abs_offdiag
from siamlab.report import plots
from siamlab.report.html import TABLE_BG, build_report

EVIL = "<script>alert('x')</script>"


def fake_results(folder: Path, label: str = "SimSiam", with_table: bool = True, figure: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    figs = []
    if figure:
        (folder / "figures").mkdir(exist_ok=True)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        fig.savefig(folder / "figures" / "f.png")
        plt.close(fig)
        figs = [{"file": "figures/f.png", "caption": "a <b>curve</b>", "drawn": True, "why": ""}]
    rows = [{"label": "random init", "random_init": True}, {"label": label, "random_init": False}]
    res = {
        "id": "zhang-t2", "paper": "ZHANG", "item": "Table 2", "expected": "SimSiam trains", "scale": "smoke", "seeds": 1,
        "seconds": 1.0, "finished": "now", "reproduced": True, "verdict": "reproduced (1/1 claims)",
        "claims": [{"text": f"{label} trains", "arms": [label], "reproduced": True, "verdict": "reproduced", "explanation": "x < y"}],
        "headers": ["arm", "top-1 % (paper)", "top-1 % (observed)", "verdict"] if with_table else [],
        "table": [["random init", "—", "10.0", "reference"], [label, "66.62", "90.1", "reproduced"]] if with_table else [],
        "rows": rows if with_table else [],
        "runs": [{"label": label, "seed": 0, "status": "completed", "message": "", "run_dir": "runs/x", "seconds": 1.0}],
        "figures": figs, "notes": "", "arms": [{"label": label, "overrides": {"method": {"name": "simsiam"}}}],
    }
    (folder / "results.json").write_text(json.dumps(res))
    return folder


def test_labels_and_messages_are_escaped(tmp_path):
    html = build_report(fake_results(tmp_path / "r", label=EVIL)).read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "a &lt;b&gt;curve&lt;/b&gt;" in html


def test_report_is_self_contained(tmp_path):
    html = build_report(fake_results(tmp_path / "r")).read_text()
    assert 'src="data:image/png;base64,' in html
    assert 'src="figures/' not in html
    assert "http://" not in html and "https://" not in html


def test_missing_results_is_a_user_error(tmp_path):
    with pytest.raises(SiamlabError, match="results.json"):
        build_report(tmp_path)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
           f"--screenshot={png}", "--window-size=1280,2000", f"file://{html}"]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB"))


def count_colour(img: np.ndarray, hex_colour: str) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img.astype(int) - rgb).max(axis=-1) <= 2).sum())


@pytest.mark.skipif(_chromium() is None, reason="chromium not found (apt-get install -y chromium)")
def test_table_is_rendered_in_headless_chromium(tmp_path):
    with_table = build_report(fake_results(tmp_path / "with"))
    without = build_report(fake_results(tmp_path / "without", with_table=False))
    img = screenshot(with_table, tmp_path / "with.png", tmp_path / "profile1")
    img0 = screenshot(without, tmp_path / "without.png", tmp_path / "profile2")
    assert count_colour(img, TABLE_BG) > 2000  # the table's background is on screen
    assert count_colour(img0, TABLE_BG) == 0  # and nothing else has that colour


# --- plot maths against independent computations ---------------------------------------------------
def test_eta_scan_curve_matches_vectors():
    rng = np.random.default_rng(1)
    o, oe = rng.normal(size=16), rng.normal(size=16)
    etas = np.linspace(-2, 2, 41)
    direct = np.array([(oe - e * o) @ o / (np.linalg.norm(oe - e * o) * np.linalg.norm(o)) for e in etas])
    c = oe @ o / (np.linalg.norm(oe) * np.linalg.norm(o))
    got = plots.eta_scan_curve(c, np.linalg.norm(oe) / np.linalg.norm(o), etas)
    assert np.allclose(got, direct, atol=1e-12)
    eta_star = oe @ o / (o @ o)
    assert abs(plots.eta_scan_curve(c, np.linalg.norm(oe) / np.linalg.norm(o), np.array([eta_star]))[0]) < 1e-12


def test_lstsq_line_matches_numpy():
    x = np.array([0.1, 0.4, 0.5, 0.9, 1.3])
    y = np.array([3.0, 2.2, 2.5, 1.1, 0.2])
    a, b = plots.lstsq_line(x, y)
    sol, *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
    assert (a, b) == pytest.approx(tuple(sol))


def test_seed_band_interpolates_on_first_seed_epochs():
    ep, mean, lo, hi = plots.seed_band([[(0, 0.0), (2, 2.0)], [(0, 1.0), (1, 3.0), (2, 5.0)]])
    assert list(ep) == [0, 2] and list(mean) == [0.5, 3.5] and list(lo) == [0.0, 2.0] and list(hi) == [1.0, 5.0]


# --- probes ---------------------------------------------------------------------------------------
def test_gen_lambda_against_loop():
    z = torch.randn(50, 6, dtype=torch.float64)
    lam = gen_lambda(z)
    ref = torch.zeros(6, 6, dtype=torch.float64)
    for row in z:
        f = 6 ** 0.5 * row / row.norm()
        ref += torch.outer(f, f) / 50
    assert torch.allclose(lam, ref)
    assert lam.trace().item() == pytest.approx(6.0)
    m = torch.tensor([[1.0, -0.2], [0.4, 1.0]])
    assert mean_abs_offdiag(m) == pytest.approx(0.3)


def test_matrix_stats_and_eigen_clusters():
    sym = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    assert matrix_stats(sym)["asym"] == pytest.approx(0.0)
    assert matrix_stats(torch.diag(torch.tensor([1.0, 2.0])))["diag_share"] == pytest.approx(1.0)
    anti = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    assert matrix_stats(anti)["asym"] == pytest.approx(2.0)
    assert eigen_clustered(np.array([1.0, 0.95, 1.05, 0.02, 0.0])) == 1.0
    assert eigen_clustered(np.array([1.0, 0.5, 0.5, 0.0])) == 0.75  # c = 0.5; 1.0 is in neither cluster
