"""Result files (results.json/.md/.csv, report.html, figures, probe arrays, diagnoses, exports) are written
atomically: a write that fails leaves the previous file as it was, no temporary file, and one sentence."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from siamlab.engine.runlog import TEMP_SUFFIX, WriteFailed
from siamlab.experiments import get
from siamlab.experiments.measures import RunRecord
from siamlab.experiments.outputs import write_all
from siamlab.experiments.results import Results
from test_write_failures import small_disk  # noqa: F401  (a fixture: a 4 MB tmpfs, root only)


def not_run_results(exp_id: str = "zhang-t2", why: str = "skipped") -> tuple:
    exp = get(exp_id)
    return exp, Results(exp, [RunRecord(a.label, 0, "not run", why) for a in exp.arms_for("tiny")], "tiny")


def temp_files(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob(f"*{TEMP_SUFFIX}"))


def fill(disk: Path) -> None:
    """Write to ``disk`` until the kernel says it is full."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_a_full_disk_keeps_the_previous_results_json_and_leaves_no_temp_file(small_disk):  # noqa: F811
    out = small_disk / "exp"
    out.mkdir()
    exp, results = not_run_results()
    write_all(exp, results, "tiny", 1, out, 1.0)
    before = {name: (out / name).read_bytes() for name in ("results.json", "results.md", "results.csv", "report.html")}
    assert json.loads(before["results.json"])["id"] == "zhang-t2"
    fill(small_disk)
    exp, results = not_run_results(why="skipped " * 4000)  # a longer results.json than the one on disk
    with pytest.raises(WriteFailed) as err:
        write_all(exp, results, "tiny", 1, out, 2.0)
    msg = str(err.value)
    assert "\n" not in msg and str(out / "results.json") in msg and "No space left on device" in msg
    assert "--resume" not in msg and "run the command again" in msg
    assert {name: (out / name).read_bytes() for name in before} == before
    assert temp_files(out) == []


def failing_fsync(monkeypatch, name: str) -> list:
    """Every fsync of a temporary file of ``name`` fails with ENOSPC (after its bytes were written); returns
    the temporary paths seen."""
    real, seen = os.fsync, []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if Path(path).name.startswith(f".{name}."):
            seen.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def assert_kept(path: Path, before: bytes, err, seen: list) -> None:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "No space left on device" in msg and "--resume" not in msg
    assert seen and path.read_bytes() == before and temp_files(path.parent) == []


@pytest.mark.parametrize("name", ["diagnosis.json", "diagnosis.html", "diagnose_metrics.png", "diagnose_spectrum.png"])
def test_diagnose_writes_are_atomic(tmp_path, monkeypatch, name):
    from siamlab.interop.diagnose import diagnose

    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 8))).save(str(tmp_path / "net.pt"))
    args = dict(data="digits", overrides=["data.train_subset=100", "eval.knn_k=5"], out_dir=str(tmp_path / "d"))
    diagnose(tmp_path / "net.pt", **args)
    before = (tmp_path / "d" / name).read_bytes()
    seen = failing_fsync(monkeypatch, name)
    with pytest.raises(WriteFailed) as err:
        diagnose(tmp_path / "net.pt", **args)
    assert_kept(tmp_path / "d" / name, before, err, seen)


@pytest.mark.parametrize("fmt", ["torchscript", "state_dict"])
def test_export_writes_are_atomic(tmp_path, monkeypatch, fmt):
    from siamlab.interop.export import export_run
    from test_export import fake_run

    run, _ = fake_run(tmp_path, "convnet", stem="cifar", in_shape=(1, 8, 8))
    (path,) = map(Path, export_run(run, fmt)["files"])
    before = path.read_bytes()
    seen = failing_fsync(monkeypatch, path.name)
    with pytest.raises(WriteFailed) as err:
        export_run(run, fmt)
    assert_kept(path, before, err, seen)


def test_report_and_figure_writes_are_atomic(tmp_path, monkeypatch):
    from siamlab.report.html import build_report
    from siamlab.report.plots import save_figure
    from test_report import fake_results

    folder = fake_results(tmp_path / "r")
    path = build_report(folder)
    before = path.read_bytes()
    seen = failing_fsync(monkeypatch, "report.html")
    with pytest.raises(WriteFailed) as err:
        build_report(folder)
    assert_kept(path, before, err, seen)
    import matplotlib.pyplot as plt

    png = folder / "figures" / "f.png"
    before = png.read_bytes()
    seen = failing_fsync(monkeypatch, "f.png")
    fig = plt.figure()
    with pytest.raises(WriteFailed) as err:
        save_figure(fig, png)
    assert_kept(png, before, err, seen)


def test_probe_arrays_are_written_atomically(tmp_path, monkeypatch):
    from siamlab import config
    from siamlab.engine.build import build_run
    from siamlab.engine.runlog import atomic_save
    from siamlab.experiments.probes import run_probe
    from test_probes import PROBE_RUN, probe_run

    run = probe_run(tmp_path)
    cfg = config.load(None, PROBE_RUN)
    method = build_run(cfg, torch.device("cpu"))[3]
    atomic_save({"method": method.state_dict(), "config": cfg.to_dict()}, run / "checkpoints" / "last.pt")
    exp, results = not_run_results()
    results.records = [RunRecord("SimSiam", 0, "completed", run_dir=str(run))]
    out = tmp_path / "exp"
    out.mkdir()
    run_probe("correlation", results, out)
    path = out / "probe" / "SimSiam-s0.npz"
    before = path.read_bytes()
    assert set(__import__("numpy").load(path)) == {"random_init", "trained"}
    seen = failing_fsync(monkeypatch, path.name)
    with pytest.raises(WriteFailed) as err:
        run_probe("correlation", results, out)
    assert_kept(path, before, err, seen)
