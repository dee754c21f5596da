"""Files siamlab writes atomically get the permissions a plain ``open()`` gives under the user's umask (issue 21
item 2): ``mkstemp`` + ``os.replace`` made every one of them 0600, so a group or a web server could not read
checkpoints, exports, config.yaml, summary.json, report.html or results.*, while metrics.jsonl (a plain open)
was 0644. Each is checked under umask 022 and 077, against metrics.jsonl and against a file opened here."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from siamlab import config
from siamlab.atomic import atomic_file, file_mode, umask
from siamlab.engine.trainer import train

TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
       "eval.knn_k=10", "eval.online_probe=false", "engine.progress=false"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def user_umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_umask_is_read_without_changing_it(user_umask):
    assert umask() == user_umask and umask() == user_umask  # reading twice: it was not reset
    assert file_mode() == 0o666 & ~user_umask


def test_atomic_file_gets_the_mode_of_a_plain_open(tmp_path, user_umask):
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    with atomic_file(tmp_path / "atomic.txt") as f:
        f.write(b"x")
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt") == 0o666 & ~user_umask
    (tmp_path / "atomic.txt").chmod(0o640)  # replacing an existing file: the new one gets the umask's mode too
    with atomic_file(tmp_path / "atomic.txt") as f:
        f.write(b"y")
    assert mode(tmp_path / "atomic.txt") == 0o666 & ~user_umask


def test_run_export_and_experiment_files_get_the_umasks_mode(tmp_path, user_umask):
    """A training run (config.yaml, summary.json, checkpoints, snapshots), its exports, and an experiment's
    results.* and report.html: each has the mode of the run's metrics.jsonl, which a plain open() made."""
    from siamlab.experiments import get, run_experiment
    from siamlab.interop.export import export_run

    expected = 0o666 & ~user_umask
    run = train(config.load(None, TOY + [f"engine.out={tmp_path}", "engine.run_name=run"])).run_dir
    assert mode(run / "metrics.jsonl") == expected  # the reference: appended through a plain open()
    files = [run / "config.yaml", run / "summary.json", run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt",
             *sorted((run / "snapshots").glob("*.npz"))]
    for fmt in ("state_dict", "torchscript"):
        files += [Path(f) for f in export_run(run, fmt=fmt, projector=True)["files"]]
    exp = get("zhang-t2")
    exp.arms_by_scale = {"tiny": exp.arms_for("tiny")[:1]}  # one arm: the files, not the science
    out = run_experiment(exp, "tiny", out=str(tmp_path / "exp"), log=lambda s: None)
    files += [out / "results.json", out / "results.csv", out / "results.md", out / "report.html"]
    files += sorted((out / "figures").glob("*.png"))
    assert len(files) >= 12 and all(f.is_file() for f in files)
    wrong = {str(f.relative_to(tmp_path)): oct(mode(f)) for f in files if mode(f) != expected}
    assert not wrong, f"expected {oct(expected)} under umask {oct(user_umask)}: {wrong}"
