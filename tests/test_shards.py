"""Tar shards that are broken or lack an index (siamlab.data.shards): one sentence naming the shard, never a
traceback; the splits agree on the number of classes; labels are range-checked streamed as in memory."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from siamlab import config
from siamlab.cli import main
from siamlab.data import load_dataset, shards
from siamlab.data.stream import FileSamples, ReadSettings, StreamDataset
from siamlab.errors import DataError

pytest.importorskip("wids")


def png(label: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 40 * label, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_tar(path: Path, labels: list) -> None:
    """A WebDataset shard: ``<key>.png`` and ``<key>.cls`` per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for i, label in enumerate(labels):
            for ext, data in ((".png", png(label)), (".cls", str(label).encode())):
                info = tarfile.TarInfo(f"{i:06d}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_index(folder: Path, labels: list, classes=None) -> None:
    index = {"wids_version": 1, "shardlist": [{"url": "shard-000000.tar", "nsamples": len(labels), "labels": labels}]}
    (folder / shards.INDEX).write_text(json.dumps(index | ({"classes": classes} if classes else {})))


def make(root: Path, train: list, val: list, index: bool = False, classes=None) -> Path:
    for split, labels in (("train", train), ("val", val)):
        write_tar(root / split / "shard-000000.tar", labels)
        if index:
            write_index(root / split, labels, classes)
    return root


def load(root: Path, split: str, *extra):
    sets = ["data.name=image_shards", f"data.root={root}", "data.image_size=8", "data.train_subset=0", "data.workers=0"]
    return load_dataset(config.load(None, sets + list(extra)).data, split)


GARBAGE = bytes(range(100))  # 100 bytes that are no tar: wids raised struct.error


def test_garbage_shard_without_index_is_one_sentence(tmp_path, capsys):
    root = make(tmp_path / "d", [0, 1, 0, 1], [0, 1])
    (root / "val" / "shard-000001.tar").write_bytes(GARBAGE)
    with pytest.raises(DataError, match=r"shard-000001\.tar.*cannot be read.*siamlab data shard"):
        load(root, "test")
    (root / "train" / "shard-000000.tar").write_bytes(GARBAGE)
    argv = ["train", "--set", "data.name=image_shards", "--set", f"data.root={root}", "--set", "data.image_size=8",
            "--set", f"engine.out={tmp_path / 'runs'}", "--set", "engine.progress=false"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("siamlab")]  # beside the scan's progress bar
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("siamlab: error: tar shard"), err
    assert "train/shard-000000.tar" in lines[0], lines


@pytest.mark.parametrize("stream", ["true", "false"])
def test_garbage_shard_listed_in_an_index_is_one_sentence(tmp_path, stream):
    root = make(tmp_path / "d", [0, 1], [0, 1], index=True, classes=["a", "b"])
    (root / "val" / "shard-000000.tar").write_bytes(GARBAGE)
    with pytest.raises(DataError, match=r"val/shard-000000\.tar.*cannot be read.*siamlab data shard"):
        ds = load(root, "test", f"data.stream={stream}")
        ds.samples.read(0)


def test_train_shards_are_scanned_once_and_only_without_their_index(tmp_path, monkeypatch):
    """The test split needs the train split's classes (or, without them, its labels): read from train/index.json
    when there is one, else from a scan of the train shards made once per process, not at every load."""
    scanned = []
    real = shards._scan
    monkeypatch.setattr(shards, "_scan", lambda folder, tars: scanned.append(folder.name) or real(folder, tars))
    root = make(tmp_path / "d", [0, 1, 2, 0], [0, 1])
    load(root, "train"), load(root, "test"), load(root, "test")
    assert sorted(scanned) == ["train", "val"]  # was: train, train, train, val, val
    scanned.clear()
    write_index(root / "train", [0, 1, 2, 0], ["a", "b", "c"])
    assert load(root, "test").classes == ["a", "b", "c"] and scanned == []  # val was scanned before


def test_splits_agree_on_the_number_of_classes_when_it_is_not_written(tmp_path):
    """Without ``classes``, K is the train split's largest label + 1 for both splits (the test split had its own:
    2 here, so L_bound and the probe saw another K)."""
    root = make(tmp_path / "d", [0, 1, 2, 3], [0, 1])
    train, test = load(root, "train"), load(root, "test")
    assert train.num_classes == test.num_classes == 4 and test.classes == ["0", "1", "2", "3"]


@pytest.mark.parametrize("index", [False, True])
def test_test_labels_outside_the_train_classes_are_refused(tmp_path, index):
    root = make(tmp_path / "d", [0, 1, 1, 0], [0, 1, 2], index=index, classes=["a", "b"] if index else None)
    with pytest.raises(DataError, match=r"val.*label 2.*train.*2 classes"):
        load(root, "test", "data.stream=true")


def test_streamed_dataset_checks_its_labels_like_an_in_memory_one():
    files = FileSamples(["a.png", "b.png"])
    for y in (torch.tensor([0, 2]), torch.tensor([-1, 0])):
        with pytest.raises(DataError, match=r"labels in \[-?\d, \d\] but num_classes=2"):
            StreamDataset(files, y, 2, "image_folder", 8, settings=ReadSettings())
    with pytest.raises(DataError, match="int64"):
        StreamDataset(files, torch.tensor([0.0, 1.0]), 2, "image_folder", 8)
    assert len(StreamDataset(files, torch.tensor([0, 1]), 2, "image_folder", 8).take(torch.tensor([1]))) == 1
