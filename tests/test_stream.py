"""Image datasets streamed from disk (README "Data"): image folders and tar shards, decoded in DataLoader
workers, cropped at decode time; exact resume; rank split; corrupt files; decompression bombs; shards."""
from __future__ import annotations

import json
from dataclasses import replace
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamlab import config
from siamlab.data import load_dataset
from siamlab.data.feed import CropSet, StreamFeed
from siamlab.data.order import epoch_order, local_span
from siamlab.data.stream import ReadSettings, StreamDataset, holding
from siamlab.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_VAL, CLASSES = 96, 24, 4


def make_folder(root: Path, n_train: int = N_TRAIN, n_val: int = N_VAL) -> Path:
    """JPEGs of 20-26 x 24 px in 4 classes (a colour per class plus noise), some of them grayscale."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            c = i % CLASSES
            img = rng.integers(0, 60, (20 + i % 7, 24, 3)) + np.array([60 * c, 200 - 50 * c, 100])
            path = root / split / f"c{c}" / f"{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
            (pil.convert("L") if i % 11 == 0 else pil).save(path, quality=90)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("folder"))


def data_sets(root, *extra) -> list:
    return ["data.name=image_folder", f"data.root={root}", "data.image_size=16", "data.train_subset=0",
            "data.workers=0", *extra]


def run_sets(root, out, name, *extra) -> list:
    return data_sets(root) + [
        "method.name=simsiam", "model.backbone=convnet", "model.width=4", "model.proj_hidden=16", "model.proj_out=8",
        "model.pred_hidden=4", "optim.batch_size=16", "optim.epochs=2", "diag.every_steps=4", "eval.knn_k=10",
        "engine.progress=false", f"engine.out={out}", f"engine.run_name={name}", *extra]


def load(root, split="train", *extra):
    return load_dataset(config.load(None, data_sets(root, *extra)).data, split)


# --- what a streamed dataset holds ------------------------------------------------------------------------
def test_streamed_folder_has_the_in_memory_labels_classes_and_clean_images(folder):
    mem, streamed = load(folder), load(folder, "train", "data.stream=true")
    assert not mem.streamed and isinstance(streamed, StreamDataset)
    assert streamed.classes == mem.classes == ["c0", "c1", "c2", "c3"] and streamed.num_classes == 4
    assert torch.equal(streamed.y, mem.y) and streamed.in_shape == mem.in_shape == (3, 16, 16)
    assert torch.equal(torch.cat(list(streamed.clean_batches(0, len(streamed), 40))), mem.x)
    sub_mem, sub = load(folder, "train", "data.train_subset=20"), load(folder, "train", "data.train_subset=20", "data.stream=true")
    assert torch.equal(sub.y, sub_mem.y) and torch.equal(torch.cat(list(sub.clean_batches(0, 20, 8))), sub_mem.x)


def test_held_in_memory_only_when_it_fits(folder, monkeypatch):
    from siamlab.data import stream

    ds = load(folder, "train", "data.stream=true")
    need = ds.decoded_bytes()
    assert need == N_TRAIN * 3 * 16 * 16
    monkeypatch.setattr(stream, "available_memory", lambda: 2 * need)  # exactly HOLD_SHARE of it
    assert holding(ds) == (False, f"{need / 2**30:.2f} GiB decoded <= 50% of {2 * need / 2**30:.1f} GiB available")
    monkeypatch.setattr(stream, "available_memory", lambda: 2 * need - 1)
    assert holding(ds)[0] is True and holding(ds, stream=False)[0] is False
    assert isinstance(load(folder), StreamDataset)  # the loader streams it now, unasked
    assert holding(load(folder, "train", "data.stream=false")) == (False, "in memory")


def test_cpu_training_leaves_cores_to_the_training_process(folder, monkeypatch):
    from siamlab.data import stream

    ds = load(folder, "train", "data.stream=true", "data.workers=null")
    monkeypatch.setattr(stream, "process_cores", lambda: 16)
    assert ds.settings.worker_count() == 8  # a GPU trains: decoding gets the cores (at most 8)
    on_cpu = stream.for_device(ds, "cpu").settings
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert on_cpu.worker_count() == 8 and stream.training_threads(on_cpu) == 8
    monkeypatch.setattr(stream, "process_cores", lambda: 2)
    assert on_cpu.worker_count() == 1 and stream.training_threads(on_cpu) == 1
    assert stream.for_device(ds, "cuda").settings.worker_count() == 2
    assert stream.training_threads(ReadSettings(workers=4)) == 1  # never below one thread
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert stream.training_threads(ReadSettings(workers=0)) == 1  # nor above what the process was given


def test_crops_have_the_configured_size_and_depend_only_on_seed_epoch_and_index(folder):
    ds = load(folder, "train", "data.stream=true")
    recipes = load_recipes(ds)
    crops, idx, skipped, err = CropSet(ds, recipes, 2, seed=3, epoch=1)[5]
    assert crops.shape == (2, 16, 16, 3) and crops.dtype == np.uint8 and (idx, skipped, err) == (5, 0, None)
    assert np.array_equal(CropSet(ds, recipes, 2, 3, 1)[5][0], crops)  # same (seed, epoch, index): same crops
    assert not np.array_equal(CropSet(ds, recipes, 2, 3, 2)[5][0], crops)  # another epoch: other crops
    assert not np.array_equal(crops[0], crops[1])  # two views, two crops
    order = epoch_order(len(ds), 3, 0)
    by = {w: list(StreamFeed(replace(ds, settings=ReadSettings(workers=w)), recipes, 2, 3, torch.device("cpu"))
                  .epoch(0, order, 1, 4, 16)) for w in (0, 2)}
    for (i0, _, c0), (i2, _, c2) in zip(by[0], by[2]):  # workers do not change what a step gets
        assert torch.equal(i0, i2) and torch.equal(c0, c2) and c0.shape == (16, 2, 3, 16, 16)
    assert torch.equal(by[0][0][0], order[16:32])  # from the requested step, in the epoch order


def load_recipes(ds):
    from siamlab.data.augment import build_augment

    return build_augment(config.load(None, data_sets("x")).data, ds).stream_recipes()


def test_ranks_read_disjoint_parts_of_each_global_batch(folder):
    ds = load(folder, "train", "data.stream=true")
    order = epoch_order(len(ds), 0, 0)
    feeds = [StreamFeed(ds, load_recipes(ds), 2, 0, torch.device("cpu")).epoch(0, order, 0, 6, 16, r, 2) for r in range(2)]
    for step, (b0, b1) in enumerate(zip(*feeds)):
        assert not set(b0[0].tolist()) & set(b1[0].tolist())
        assert torch.equal(torch.cat([b0[0], b1[0]]), order[step * 16:(step + 1) * 16])


# --- training ------------------------------------------------------------------------------------------------
def test_streamed_training_resumes_mid_epoch_bit_identically(folder, tmp_path):
    """2 epochs straight == stopped by SIGTERM at step 4 of 6 (mid-epoch), then resumed (CPU, bit-identical)."""
    from siamlab.engine.trainer import Trainer, train

    sets = run_sets(folder, tmp_path, "straight", "data.stream=true", "data.workers=1")
    straight = train(config.load(None, sets))
    t = Trainer(config.load(None, run_sets(folder, tmp_path, "cut", "data.stream=true", "data.workers=1")))
    step = t.train_step

    def stop_after_four(*args):
        if t.step == 3:
            signal.raise_signal(signal.SIGTERM)
        return step(*args)

    t.train_step = stop_after_four
    cut = t.fit()
    assert cut.summary["status"] == "interrupted" and cut.summary["steps"] == 4 < t.steps_per_epoch == 6
    resumed = train(config.load(None, run_sets(folder, tmp_path, "cut", "data.stream=true", "data.workers=1")),
                    run_dir=str(cut.run_dir), resume=True)
    assert resumed.summary["status"] == "completed" and resumed.summary["steps"] == 12
    a = torch.load(straight.run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]
    b = torch.load(resumed.run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(x) for x in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r.get("skipped_files") == 0 for r in records if r["kind"] == "train")


def test_streamed_step_does_not_synchronize(folder, tmp_path):
    """Flip, jitter, grayscale, blur and solarize of decode-time crops (bridge preset) stay on the device."""
    from siamlab.engine.hostsync import HostSyncCheck
    from siamlab.engine.trainer import Trainer

    t = Trainer(config.load(None, run_sets(folder, tmp_path, "sync", "data.stream=true", "data.augment=bridge",
                                           "diag.every_steps=0")))
    batches = t.batches(*(2 * [epoch_order(len(t.train_ds), 0, 0)]))
    t.train_step(*next(batches))
    t.step += 1
    idx, idx_dev, crops = next(batches)
    with HostSyncCheck() as check:
        t.train_step(idx, idx_dev, crops)
    assert not check.found, check.report()
    batches.close()


BAD = "c1/0001.jpg"  # sample 24: class c0 holds 24 training images


def corrupt_folder(tmp_path, folder, content: bytes = b"\xff\xd8 not really a jpeg") -> Path:
    import shutil

    root = tmp_path / "corrupt"
    shutil.copytree(folder, root)
    (root / "train" / BAD).write_bytes(content)
    return root


def test_corrupt_file_stops_with_one_sentence_naming_it(folder, tmp_path):
    root = corrupt_folder(tmp_path, folder)
    args = [a for s in run_sets(root, tmp_path, "stop", "data.stream=true", "data.workers=1") for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "siamlab", "train", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "0001.jpg" in lines[0] and "cannot be decoded" in lines[0] and "data.on_corrupt=skip" in lines[0]
    with pytest.raises(DataError, match="0001.jpg"):  # held in memory: the same sentence
        load(root)


def test_corrupt_file_skipped_and_counted(folder, tmp_path):
    from siamlab.engine.trainer import train

    root = corrupt_folder(tmp_path, folder)
    res = train(config.load(None, run_sets(root, tmp_path, "skip", "data.stream=true", "data.on_corrupt=skip")))
    assert res.summary["status"] == "completed"
    records = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    # the bad sample is read once per epoch (2 epochs of 6 full batches of 16 cover all 96)
    assert sum(r.get("skipped_files", 0) for r in records if r["kind"] == "train") == 2
    ds = load(root, "train", "data.stream=true", "data.on_corrupt=skip")
    bad = next(i for i, p in enumerate(ds.samples.paths) if p.endswith(BAD))
    crops, idx, skipped, err = CropSet(ds, load_recipes(ds), 2, 0, 0)[bad]
    assert bad == 24 and (idx, skipped, err) == (25, 1, None)  # the next readable sample, with its index
    assert ds.y[25] == 1 and crops.shape == (2, 16, 16, 3)
    mem = load(root, "train", "data.on_corrupt=skip")
    assert len(mem) == N_TRAIN - 1 and mem.skipped_files == 1
    assert mem.y.tolist() == [y for i, y in enumerate(ds.y.tolist()) if i != bad]


def test_decompression_bomb_refused_in_memory_and_streamed(folder, tmp_path, capsys):
    """An image over data.max_image_pixels (here 5,000, an 80 x 80 PNG) is refused before it is decoded."""
    import io

    from PIL import Image

    from siamlab import cli

    png = io.BytesIO()
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(png, format="PNG")
    root = corrupt_folder(tmp_path, folder, png.getvalue())
    limit = "data.max_image_pixels=5000"
    with pytest.raises(DataError) as held:
        load(root, "train", limit)
    ds = load(root, "train", limit, "data.stream=true")  # listing decodes nothing
    streamed = CropSet(ds, load_recipes(ds), 2, 0, 0)[24][3]
    for text in (str(held.value), streamed):
        assert BAD in text and "80x80 = 6,400 pixels" in text and "raise data.max_image_pixels" in text
    assert len(load(root, "train", "data.max_image_pixels=6400")) == N_TRAIN  # at the limit: accepted
    assert cli.main(["train", *[a for s in run_sets(root, tmp_path, "bomb", limit) for a in ("--set", s)]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("siamlab: error: image") and "Traceback" not in err[0]


# --- shards ---------------------------------------------------------------------------------------------------
def test_folder_to_shards_round_trip(folder, tmp_path):
    pytest.importorskip("webdataset")
    pytest.importorskip("wids")
    out = tmp_path / "shards"
    r = subprocess.run([sys.executable, "-m", "siamlab", "data", "shard", str(folder), str(out), "--per-shard", "40"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{N_TRAIN} train images" in r.stdout and "sharding train" in r.stderr  # the progress bar
    assert sorted(p.name for p in (out / "train").glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    for split in ("train", "test"):
        mem = load(folder, split)
        sh = load_dataset(config.load(None, data_sets(out, "data.name=image_shards", "data.stream=true")).data, split)
        assert sh.classes == mem.classes and torch.equal(sh.y, mem.y)
        assert torch.equal(torch.cat(list(sh.clean_batches(0, len(sh), 32))), mem.x)  # same samples, same order
        held = load_dataset(config.load(None, data_sets(out, "data.name=image_shards")).data, split)
        assert torch.equal(held.x, mem.x)
    ds = load_dataset(config.load(None, data_sets(out, "data.name=image_shards", "data.stream=true")).data, "train")
    folder_ds = load(folder, "train", "data.stream=true")
    assert np.array_equal(CropSet(ds, load_recipes(ds), 2, 0, 0)[50][0], CropSet(folder_ds, load_recipes(ds), 2, 0, 0)[50][0])
    (out / "train" / "index.json").unlink()  # shards without our index (written elsewhere): scanned instead
    again = load_dataset(config.load(None, data_sets(out, "data.name=image_shards")).data, "train")
    assert torch.equal(again.y, load(folder).y) and again.classes == ["0", "1", "2", "3"]  # no names to be had
    r = subprocess.run([sys.executable, "-m", "siamlab", "data", "shard", str(folder), str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "already holds shards" in r.stderr and "Traceback" not in r.stderr
    from siamlab.data.shard_writer import write_shards
    from siamlab.errors import ConfigError

    with pytest.raises(ConfigError, match="--per-shard=0"):
        write_shards(str(folder), str(tmp_path / "other"), per_shard=0)


def test_datasets_command_says_memory_or_stream(folder):
    def row(*sets):
        r = subprocess.run([sys.executable, "-m", "siamlab", "datasets", *[a for s in sets for a in ("--set", s)]],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return next(line for line in r.stdout.splitlines() if line.startswith("image_folder"))

    assert " memory (" in row(f"data.root={folder}") and "GiB available" in row(f"data.root={folder}")
    assert " stream (" in row(f"data.root={folder}", "data.stream=true")
    assert "no " in row()  # no data.root: not available


# --- two processes ----------------------------------------------------------------------------------------------
def worker_ranks(root: str, out: str) -> None:
    """One rank of a 2-process gloo run on the streamed folder; saves the sample indices it read."""
    from siamlab import collectives
    from siamlab.engine import dist
    from siamlab.engine.trainer import Trainer

    t = Trainer(config.load(None, run_sets(root, out, "ddp", "data.stream=true", "optim.epochs=1", "eval.random_init=false")))
    seen, epoch = [], t.feed.epoch

    def recording(*args):
        for batch in epoch(*args):
            seen.append(batch[0].tolist())
            yield batch

    t.feed.epoch = recording
    status = t.fit().summary["status"]
    torch.save({"seen": seen, "status": status}, Path(out) / f"seen{collectives.rank()}.pt")
    dist.cleanup()


def test_two_gloo_processes_read_disjoint_parts_of_each_global_batch(folder, tmp_path):
    from test_distributed import dist_env, free_port

    port = free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(folder), str(tmp_path)], cwd=ROOT, env=dist_env(r, 2, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=170) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    got = [torch.load(tmp_path / f"seen{r}.pt") for r in range(2)]
    assert [g["status"] for g in got] == ["completed", "completed"] and len(got[0]["seen"]) == N_TRAIN // 16
    order = epoch_order(N_TRAIN, 0, 0)
    for step, (mine, theirs) in enumerate(zip(got[0]["seen"], got[1]["seen"])):
        assert len(mine) == len(theirs) == 8 and not set(mine) & set(theirs)
        assert mine + theirs == order[step * 16:(step + 1) * 16].tolist()  # rank order = one process's batch


if __name__ == "__main__":
    worker_ranks(*sys.argv[1:])
