"""`siamlab data shard` (issue 21 item 6): unreadable images are refused or left out by --on-corrupt as training
does, named with their count; everything that can be checked is checked before anything is written, and a refusal
leaves no output; every sample records its source file, which training's on_corrupt=stop message names."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from siamlab import config
from siamlab.cli import main
from siamlab.data import load_dataset

pytest.importorskip("webdataset")
pytest.importorskip("wids")

N_TRAIN, N_VAL = 12, 4
CORRUPT, EMPTY = "train/c1/0003.jpg", "train/c0/0004.jpg"


def image_folder(root: Path, bad: bool = True) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        for i in range(n):
            path = root / split / f"c{i % 2}" / f"{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (10, 12, 3)).astype(np.uint8)).save(path, quality=90)
    if bad:
        good = (root / CORRUPT).read_bytes()
        (root / CORRUPT).write_bytes(good[:len(good) // 2])  # a JPEG cut short: its header still reads
        (root / EMPTY).write_bytes(b"")
    return root


def files_under(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def one_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip() and not x.startswith("sharding")]
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: ") and "Traceback" not in err, err
    return lines[0]


def test_unreadable_images_are_refused_by_default_naming_each_and_nothing_is_written(tmp_path, capsys):
    src, out = image_folder(tmp_path / "images"), tmp_path / "shards"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_error(["data", "shard", str(src), str(out)], capsys)
    assert "2 image(s)" in line and f"{CORRUPT} (OSError)" in line and f"{EMPTY} (empty file)" in line, line
    assert "--on-corrupt skip" in line and "nothing was written" in line
    assert files_under(out) == ["notes.txt"]  # no train/, val/ or hidden partial folders


def test_skip_leaves_them_out_names_them_and_records_them(tmp_path, capsys):
    src, out = image_folder(tmp_path / "images"), tmp_path / "shards"
    assert main(["data", "shard", str(src), str(out), "--on-corrupt", "skip"]) == 0
    std = capsys.readouterr()
    assert f"{N_TRAIN - 2} train images, {N_VAL} val images, 2 unreadable left out" in std.out, std.out
    assert CORRUPT in std.err and EMPTY in std.err and "left out (--on-corrupt skip)" in std.err
    index = json.loads((out / "train" / "index.json").read_text())
    assert sorted(index["skipped"]) == sorted([CORRUPT, EMPTY])
    assert json.loads((out / "val" / "index.json").read_text())["skipped"] == []
    sets = ["data.name=image_shards", f"data.root={out}", "data.image_size=8", "data.train_subset=0", "data.workers=0"]
    ds = load_dataset(config.load(None, sets).data, "train")
    assert len(ds) == N_TRAIN - 2 and ds.x.shape[1:] == (3, 8, 8)
    assert [p.name for p in out.iterdir()] and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_an_output_holding_shards_of_one_split_is_refused_before_any_write(tmp_path, capsys):
    """It used to write train/ and then refuse at val/, leaving half an output."""
    src, out = image_folder(tmp_path / "images", bad=False), tmp_path / "shards"
    assert main(["data", "shard", str(src), str(out)]) == 0
    (out / "train" / "shard-000000.tar").unlink()
    (out / "train" / "index.json").unlink()
    before = files_under(out)
    line = one_error(["data", "shard", str(src), str(out)], capsys)
    assert f"{out / 'val'} already holds shards" in line
    assert files_under(out) == before  # train/ stayed empty


def test_training_names_the_source_file_of_an_unreadable_sample(tmp_path, capsys):
    """A sample damaged inside its shard after packing: on_corrupt=stop names the shard's member and the
    image folder's file it was packed from."""
    src, out = image_folder(tmp_path / "images", bad=False), tmp_path / "shards"
    assert main(["data", "shard", str(src), str(out)]) == 0
    tar_path = out / "train" / "shard-000000.tar"
    with tarfile.open(tar_path) as tar:
        member = tar.getmember("00000007.jpg")  # class c0's 6 files come first: c1/0003.jpg is the 8th
        assert tar.extractfile("00000007.path").read() == b"train/c1/0003.jpg"
    with open(tar_path, "r+b") as f:  # the same size, so the tar and its index stay valid
        f.seek(member.offset_data)
        f.write(b"\0" * member.size)
    sets = ["data.name=image_shards", f"data.root={out}", "data.image_size=8", "data.stream=true", "data.workers=0",
            "method.name=simsiam", "model.backbone=convnet", "model.width=4", "model.proj_hidden=8", "model.proj_out=8",
            "model.pred_hidden=4", "optim.batch_size=4", "optim.epochs=1", "diag.every_steps=0", "eval.knn_k=3",
            "eval.online_probe=false", "engine.progress=false", f"engine.out={tmp_path}", "engine.run_name=run"]
    line = one_error(["train", *[a for s in sets for a in ("--set", s)]], capsys)
    assert "shard-000000.tar:00000007.jpg (packed from 'train/c1/0003.jpg')" in line and "cannot be decoded" in line


def test_bad_options_are_one_sentence(tmp_path, capsys):
    from siamlab.data.shard_writer import write_shards
    from siamlab.errors import ConfigError

    src = image_folder(tmp_path / "images", bad=False)
    with pytest.raises(ConfigError, match="--on-corrupt='ignore' is not valid"):
        write_shards(str(src), str(tmp_path / "o"), on_corrupt="ignore")
    line = one_error(["data", "shard", str(tmp_path / "nowhere"), str(tmp_path / "o")], capsys)
    assert "image folder not found" in line and not (tmp_path / "o").exists()
