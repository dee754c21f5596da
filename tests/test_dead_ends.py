"""No dead ends (issue 21 item 3): a run that stopped before its first checkpoint cannot be resumed, so every
message about it — the refusal of a new run with its name, of ``--resume``, its ``write_failed`` or ``failed``
summary — names a way out that works, and each test runs that way out as the message prints it. States: a
SIGKILL before the first checkpoint, a full disk at the first checkpoint, an unreadable image under
``data.on_corrupt=stop`` (before and after a checkpoint)."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from siamlab.cli import main
from test_write_failures import full_disk_at, sigkill_at_marker

TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
       "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=2", "diag.every_steps=0",
       "eval.knn_k=10", "eval.every_epochs=1", "eval.online_probe=false", "engine.progress=false"]


def sets(items) -> list:
    return [a for s in items for a in ("--set", s)]


def error_line(argv, capsys) -> str:
    """The CLI's one ``siamlab: error:`` line (exit 2, no traceback)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: ") and "Traceback" not in err, err
    return lines[0]


def restart_in(text: str, run: Path) -> list:
    """The `siamlab train ... --overwrite` command a message names, as argv for main()."""
    (cmd,) = re.findall(r"`(siamlab train [^`]*--overwrite)`", text)
    argv = shlex.split(cmd)[1:]
    assert argv[1] == str(run / "config.yaml"), cmd
    return argv


def assert_no_checkpoint_ways(run: Path, out: Path, capsys) -> list:
    """A new run with the run's name and `--resume` are refused, each naming what works; returns the restart argv."""
    line = error_line(["train", *sets(TOY + [f"engine.out={out}", "engine.run_name=run"])], capsys)
    assert "stopped before its first checkpoint" in line and "--overwrite" in line and "--resume" not in line, line
    line = error_line(["train", "--resume", str(run)], capsys)
    assert f"cannot resume {str(run)!r}: it stopped before its first checkpoint" in line, line
    return restart_in(line, run)


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


# --- SIGKILL before the first checkpoint ----------------------------------------------------------------
KILLED_IN_EPOCH_1 = """
import sys, time
import siamlab.engine.loop as loop
def end_of_epoch(tr):  # the first epoch's steps are done; its checkpoint is not written yet
    open(sys.argv[1], "w").close()
    time.sleep(600)
loop.end_of_epoch = end_of_epoch
from siamlab.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_before_the_first_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    sigkill_at_marker(KILLED_IN_EPOCH_1, tmp_path / "epoch-done",
                      ["train", *sets(TOY + [f"engine.out={tmp_path}", "engine.run_name=run"])])
    assert (run / "config.yaml").is_file() and not (run / "checkpoints" / "last.pt").exists()
    assert not (run / "summary.json").exists()  # SIGKILL: no clean-up at all
    argv = assert_no_checkpoint_ways(run, tmp_path, capsys)
    assert main(argv) == 0  # the way out, exactly as printed
    assert summary_of(run)["status"] == "completed" and summary_of(run)["steps"] == 2 * (1500 // 64)


# --- a full disk at the first checkpoint ------------------------------------------------------------------
def test_full_disk_at_the_first_checkpoint(tmp_path, monkeypatch, capsys):
    full_disk_at(monkeypatch, "last.pt")
    run = tmp_path / "run"
    assert main(["train", *sets(TOY + [f"engine.out={tmp_path}", "engine.run_name=run"])]) == 3
    out = capsys.readouterr().out
    summary = summary_of(run)
    assert summary["status"] == "write_failed" and "last.pt (No space left on device)" in summary["message"]
    assert "--resume" not in summary["message"] and f"status: write_failed ({summary['message']})" in out
    assert (run / "checkpoints" / "best.pt").is_file() and not (run / "checkpoints" / "last.pt").exists()
    restart = restart_in(summary["message"], run)
    assert assert_no_checkpoint_ways(run, tmp_path, capsys) == restart
    monkeypatch.undo()  # space is free again
    assert main(restart) == 0 and summary_of(run)["status"] == "completed"


# --- an unreadable image under data.on_corrupt=stop -----------------------------------------------------------
def image_folder(root: Path) -> Path:
    from PIL import Image

    for split, n in (("train", 48), ("val", 16)):
        for i in range(n):
            path = root / split / f"c{i % 2}" / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 12), (120 * (i % 2), 40 + i, 90)).save(path)
    return root


def image_run(root: Path, out: Path, *extra) -> list:
    return ["data.name=image_folder", f"data.root={root}", "data.image_size=8", "data.stream=true", "data.workers=0",
            "method.name=simsiam", "model.backbone=convnet", "model.width=4", "model.proj_hidden=8", "model.proj_out=8",
            "model.pred_hidden=4", "optim.batch_size=16", "optim.epochs=2", "diag.every_steps=0", "eval.knn_k=5",
            "eval.online_probe=false", "engine.progress=false", f"engine.out={out}", "engine.run_name=run", *extra]


BAD = "train/c1/001.png"


def test_unreadable_image_before_the_first_checkpoint(tmp_path, capsys):
    root = image_folder(tmp_path / "images")
    (root / BAD).write_bytes(b"")  # a zero-byte file
    run = tmp_path / "run"
    line = error_line(["train", *sets(image_run(root, tmp_path))], capsys)
    assert "001.png" in line and "data.on_corrupt=skip" in line, line
    assert summary_of(run)["status"] == "failed" and summary_of(run)["message"] in line  # the summary says so too
    restart = restart_in(line, run)
    assert assert_no_checkpoint_ways(run, tmp_path, capsys) == restart
    assert main(restart + ["--set", "data.on_corrupt=skip"]) == 0  # the message's two fixes together
    assert summary_of(run)["status"] == "completed"


def test_unreadable_image_after_a_checkpoint_resumes_with_skip(tmp_path, monkeypatch, capsys):
    """The image becomes unreadable after epoch 1's checkpoint: the message says --resume continues, and
    --resume may set data.on_corrupt=skip (no image was unreadable before the checkpoint)."""
    import siamlab.engine.loop as loop

    root = image_folder(tmp_path / "images")
    real_end = loop.end_of_epoch

    def end_then_break(tr):
        ok = real_end(tr)
        (root / BAD).write_bytes(b"\x89PNG cut short")
        return ok

    monkeypatch.setattr(loop, "end_of_epoch", end_then_break)
    run = tmp_path / "run"
    line = error_line(["train", *sets(image_run(root, tmp_path))], capsys)
    assert "001.png" in line and f"`siamlab train --resume {run}` continues the run from its last good checkpoint" in line, line
    assert summary_of(run)["status"] == "failed"
    monkeypatch.setattr(loop, "end_of_epoch", real_end)
    assert main(["train", "--resume", str(run), "--set", "data.on_corrupt=skip"]) == 0
    out = capsys.readouterr().out
    assert "status: completed" in out and summary_of(run)["epochs_done"] == 2
