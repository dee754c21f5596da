"""Dataset loaders (SPEC §5): every loader on real or test-written files, subsets, errors."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from siamlab.config import DataConfig
from siamlab.data import DATASETS, dataset_status, load_dataset
from siamlab.data.dataset import ArrayDataset, channel_stats
from siamlab.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def cfg(name, **kw) -> DataConfig:
    kw.setdefault("train_subset", 0)  # the whole split unless a test asks for a subset
    return DataConfig(name=name, **kw)


# --- Fashion-MNIST ------------------------------------------------------------------------------
@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files():
    train, test = load_dataset(cfg("fashion_mnist"), "train"), load_dataset(cfg("fashion_mnist"), "test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == torch.uint8 and train.kind == "image" and train.num_classes == 10
    # Known first labels of the published files (Ankle boot, T-shirt, T-shirt, Dress, ...).
    assert train.y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert test.y[:5].tolist() == [9, 2, 1, 1, 6]
    assert torch.bincount(train.y).tolist() == [6000] * 10
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        raw = f.read()
    last = np.frombuffer(raw[-784:], dtype=np.uint8).reshape(28, 28)  # the last image, read by offset
    assert np.array_equal(test.x[-1, 0].numpy(), last)
    assert train.classes[9] == "Ankle boot"


def write_idx(path: Path, array: np.ndarray, gz: bool):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)


def make_fashion_folder(root: Path, gz: bool, n: int = 6) -> tuple:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    suffix = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_root(tmp_path, gz):
    images, labels = make_fashion_folder(tmp_path, gz)
    ds = load_dataset(cfg("fashion_mnist", root=str(tmp_path)), "test")
    assert np.array_equal(ds.x[:, 0].numpy(), images)
    assert ds.y.tolist() == labels.tolist()


def test_fashion_mnist_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(cfg("fashion_mnist", root=str(tmp_path / "nowhere")), "train")
    msg = str(e.value)
    assert "Fashion-MNIST not found in" in msg and "nowhere" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_corrupt_files(tmp_path):
    make_fashion_folder(tmp_path, gz=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    raw = bad.read_bytes()
    bad.write_bytes(b"\x00\x00\x08\x01" + raw[4:])  # wrong number of dimensions in the magic number
    with pytest.raises(DataError, match="magic number 0x00000801, expected 0x00000803"):
        load_dataset(cfg("fashion_mnist", root=str(tmp_path)), "test")
    bad.write_bytes(raw[:-10])  # truncated data
    with pytest.raises(DataError, match="holds 4694 data bytes but its header"):
        load_dataset(cfg("fashion_mnist", root=str(tmp_path)), "test")
    bad.write_bytes(raw + b"\x00")  # trailing garbage
    with pytest.raises(DataError, match="holds 4705 data bytes but its header"):
        load_dataset(cfg("fashion_mnist", root=str(tmp_path)), "test")


def test_fashion_mnist_truncated_gzip(tmp_path):
    make_fashion_folder(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError) as e:
        load_dataset(cfg("fashion_mnist", root=str(tmp_path)), "train")
    assert "train-labels-idx1-ubyte.gz" in str(e.value) and "cannot be read" in str(e.value)


# --- built-in data ------------------------------------------------------------------------------
def test_digits_split_is_stratified_disjoint_and_complete():
    from sklearn.datasets import load_digits

    train, test = load_dataset(cfg("digits"), "train"), load_dataset(cfg("digits"), "test")
    assert train.x.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797 and len(test) == 359
    assert train.x.dtype == torch.uint8 and int(train.x.max()) == 255
    reference = np.rint(load_digits().images * 255 / 16).astype(np.uint8).reshape(1797, 64)
    rows = {r.tobytes(): i for i, r in enumerate(reference)}
    found = [rows.get(x.numpy().reshape(64).tobytes()) for x in torch.cat([train.x, test.x])]
    assert None not in found
    assert torch.bincount(test.y, minlength=10).min() >= 25  # every class well represented in test
    again = load_dataset(cfg("digits"), "test")
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)


@pytest.mark.parametrize("name", ["blobs", "moons"])
def test_toy_data_shapes_labels_and_separability(name):
    train, test = load_dataset(cfg(name), "train"), load_dataset(cfg(name), "test")
    assert train.kind == "vector" and train.x.dtype == torch.float32 and train.x.shape == (1500, 2)
    assert test.x.shape == (600, 2) and train.num_classes == 3
    assert torch.bincount(train.y).tolist() == [500] * 3 and torch.bincount(test.y).tolist() == [200] * 3
    assert train.x.mean(0).abs().max() < 1e-4 and (train.x.std(0) - 1).abs().max() < 1e-3
    nearest = torch.cdist(test.x, train.x).argmin(1)  # 1-NN: the classes are real structure
    assert (train.y[nearest] == test.y).float().mean() > 0.9
    assert torch.equal(load_dataset(cfg(name), "train").x, train.x)


def test_moons_lower_moon_lies_between_the_upper_ones():
    ds = load_dataset(cfg("moons"), "train")
    mean_x = [float(ds.x[ds.y == c, 0].mean()) for c in range(3)]
    mean_y = [float(ds.x[ds.y == c, 1].mean()) for c in range(3)]
    assert mean_x[0] < mean_x[1] < mean_x[2]
    assert mean_y[1] < mean_y[0] and mean_y[1] < mean_y[2]


def test_synthetic_deterministic_sized_and_class_structured():
    train = load_dataset(cfg("synthetic"), "train")
    assert train.x.shape == (5000, 3, 32, 32) and train.x.dtype == torch.uint8
    assert torch.equal(train.x, load_dataset(cfg("synthetic"), "train").x)
    test = load_dataset(cfg("synthetic"), "test")
    assert not torch.equal(test.x[:100], train.x[:100])
    small = load_dataset(cfg("synthetic", image_size=16, test_subset=50), "test")
    assert small.x.shape == (50, 3, 16, 16)
    # Nearest class mean on raw pixels beats chance (0.1) clearly: the classes are real structure.
    flat_tr, flat_te = train.x.flatten(1).float(), test.x.flatten(1).float()
    means = torch.stack([flat_tr[train.y == c].mean(0) for c in range(10)])
    assert (torch.cdist(flat_te, means).argmin(1) == test.y).float().mean() > 0.3


# --- CIFAR: tiny archives written here ------------------------------------------------------------
def py2_pickle(d: dict) -> bytes:
    """A pickle laid out like the official CIFAR files (Python 2 cPickle, protocol 2): keys and
    strings as BINSTRING, arrays via numpy.core.multiarray._reconstruct."""
    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def i(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    def value(v) -> bytes:
        if isinstance(v, np.ndarray):
            dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
                     + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
            return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b")
                    + b"\x87R" + b"(" + i(1) + b"(" + b"".join(i(n) for n in v.shape) + b"t" + dtype + b"\x89"
                    + s(v.tobytes()) + b"tb")
        if isinstance(v, list):
            return b"](" + b"".join(value(e) for e in v) + b"e"
        if isinstance(v, int):
            return i(v)
        return s(v.encode() if isinstance(v, str) else v)

    body = b"".join(s(k.encode()) + value(v) for k, v in d.items())
    return b"\x80\x02}(" + body + b"u."


def test_py2_pickle_helper_matches_plain_pickle():
    data = np.arange(12, dtype=np.uint8).reshape(2, 6)
    loaded = pickle.loads(py2_pickle({"data": data, "labels": [3, 1], "batch_label": "b"}), encoding="latin1")
    assert np.array_equal(loaded["data"], data) and loaded["labels"] == [3, 1] and loaded["batch_label"] == "b"


def cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(folder: Path, py2: bool = True) -> dict:
    """cifar-10-batches-py with 5 train batches of 3 images and a test batch of 4; returns the arrays."""
    folder.mkdir(parents=True)
    dump = py2_pickle if py2 else (lambda d: pickle.dumps({k.encode(): v for k, v in d.items()}, protocol=3))
    arrays = {}
    for k, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        n = 4 if name == "test_batch" else 3
        arrays[name] = (cifar_images(n, k), [(k + j) % 10 for j in range(n)])
        (folder / name).write_bytes(dump({"batch_label": name, "labels": arrays[name][1], "data": arrays[name][0]}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(dump({"label_names": names, "num_vis": 3072}))
    return arrays


def expected_image(row: np.ndarray, c: int, i: int, j: int) -> int:
    return int(row[c * 1024 + i * 32 + j])  # CIFAR rows: 1024 red, then green, then blue, row-major


def make_tar(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return dest


@pytest.mark.parametrize("py2", [True, False])
def test_cifar10_folder_and_archive(tmp_path, py2):
    arrays = write_cifar10(tmp_path / "cifar-10-batches-py", py2)
    archive = make_tar(tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    roots = [tmp_path / "cifar-10-batches-py", tmp_path, archive]
    for root in roots:
        train = load_dataset(cfg("cifar10", root=str(root)), "train")
        test = load_dataset(cfg("cifar10", root=str(root)), "test")
        assert train.x.shape == (15, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
        assert train.y.tolist() == sum((arrays[f"data_batch_{b}"][1] for b in range(1, 6)), [])
        row = arrays["test_batch"][0][2]
        for c, i, j in [(0, 0, 0), (1, 5, 31), (2, 31, 7)]:
            assert int(test.x[2, c, i, j]) == expected_image(row, c, i, j)
        assert test.classes[9] == "truck" and test.num_classes == 10


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = cifar_images(5, 7)
    fine, coarse = [99, 0, 42, 7, 63], [19, 0, 1, 2, 3]
    for name in ("train", "test"):
        (folder / name).write_bytes(py2_pickle({"data": data, "fine_labels": fine, "coarse_labels": coarse}))
    (folder / "meta").write_bytes(py2_pickle({"fine_label_names": [f"c{k}" for k in range(100)]}))
    archive = make_tar(folder, tmp_path / "cifar-100-python.tar.gz")
    for root in (folder, archive):
        ds = load_dataset(cfg("cifar100", root=str(root)), "train")
        assert ds.y.tolist() == fine and ds.num_classes == 100 and ds.classes[42] == "c42"
        assert int(ds.x[4, 1, 3, 2]) == expected_image(data[4], 1, 3, 2)


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_side_effect(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": Evil(marker), b"labels": [0]}, protocol=3)
    assert "system" in str(evil)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(DataError) as e:
        load_dataset(cfg("cifar10", root=str(tmp_path)), "train")
    assert "data_batch_3" in str(e.value) and "system" in str(e.value) and "tampered" in str(e.value)
    assert not marker.exists()


def test_cifar_missing_damaged_and_malformed(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(cfg("cifar10", root=str(tmp_path)), "train")
    assert "CIFAR-10 not found in" in str(e.value) and "cifar-10-python.tar.gz" in str(e.value)
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "x").mkdir()
    archive = make_tar(tmp_path / "cifar-10-batches-py", tmp_path / "x" / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="damaged|not found"):
        load_dataset(cfg("cifar10", root=str(archive)), "train")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle({"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(DataError, match=r"no uint8 'data' array of shape \[N, 3072\]"):
        load_dataset(cfg("cifar10", root=str(tmp_path)), "test")


# --- image folders --------------------------------------------------------------------------------
def write_png(path: Path, array: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_image_folder(tmp_path):
    green_center = np.zeros((16, 48, 3), np.uint8)
    green_center[:, :16] = (255, 0, 0)
    green_center[:, 16:32] = (0, 255, 0)
    green_center[:, 32:] = (255, 0, 0)
    write_png(tmp_path / "train" / "cat" / "a.png", green_center)
    write_png(tmp_path / "train" / "cat" / "b.png", np.full((40, 30, 3), 77))
    write_png(tmp_path / "train" / "dog" / "c.png", np.full((20, 20, 3), 200))
    write_png(tmp_path / "val" / "dog" / "d.png", np.full((64, 64, 3), 10))
    train = load_dataset(cfg("image_folder", root=str(tmp_path), image_size=16), "train")
    assert train.x.shape == (3, 3, 16, 16) and train.classes == ["cat", "dog"] and train.y.tolist() == [0, 0, 1]
    assert (train.x[0, 1] == 255).all() and (train.x[0, 0] == 0).all()  # short side kept, center crop
    assert (train.x[1] == 77).all() and (train.x[2] == 200).all()
    test = load_dataset(cfg("image_folder", root=str(tmp_path), image_size=16), "test")
    assert test.y.tolist() == [1] and (test.x == 10).all()
    default = load_dataset(cfg("image_folder", root=str(tmp_path)), "test")
    assert default.x.shape == (1, 3, 64, 64)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not set"):
        load_dataset(cfg("image_folder"), "train")
    write_png(tmp_path / "train" / "cat" / "a.png", np.zeros((8, 8, 3)))
    with pytest.raises(DataError, match="has no val/test sub-folder"):
        load_dataset(cfg("image_folder", root=str(tmp_path)), "test")
    write_png(tmp_path / "val" / "bird" / "b.png", np.zeros((8, 8, 3)))
    with pytest.raises(DataError, match="class 'bird' of val is not in train"):
        load_dataset(cfg("image_folder", root=str(tmp_path)), "test")
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError) as e:
        load_dataset(cfg("image_folder", root=str(tmp_path)), "train")
    assert "broken.jpg" in str(e.value) and "cannot be decoded" in str(e.value)


# --- subsets, registry, errors ---------------------------------------------------------------------
def test_subsets_are_fixed_balanced_and_drawn_from_the_split():
    full = load_dataset(cfg("digits"), "train")
    sub = load_dataset(cfg("digits", train_subset=100), "train")
    assert len(sub) == 100 and torch.bincount(sub.y).tolist() == [10] * 10
    assert torch.equal(sub.x, load_dataset(cfg("digits", train_subset=100), "train").x)
    rows = {x.numpy().tobytes() for x in full.x}
    assert all(x.numpy().tobytes() in rows for x in sub.x)
    assert len(load_dataset(cfg("digits", test_subset=30), "test")) == 30
    assert len(load_dataset(cfg("digits", train_subset=10**6), "train")) == len(full)  # capped at the split


def test_unknown_name_and_split():
    with pytest.raises(ConfigError, match="unknown data.name 'mnist'; valid names are: blobs, cifar10"):
        load_dataset(cfg("mnist"), "train")
    with pytest.raises(ConfigError, match="split='val'"):
        load_dataset(cfg("blobs"), "val")


def test_dataset_status(tmp_path):
    rows = {r["name"]: r for r in dataset_status()}
    assert set(rows) == set(DATASETS)
    assert rows["digits"]["available"] and rows["synthetic"]["available"]
    assert rows["fashion_mnist"]["available"] == (FASHION / "train-images-idx3-ubyte.gz").is_file()
    assert not rows["image_folder"]["available"] and "data.root" in rows["image_folder"]["how"]
    write_cifar10(tmp_path / "cifar-10-batches-py")
    rows = {r["name"]: r for r in dataset_status(str(tmp_path))}
    assert rows["cifar10"]["available"] and rows["cifar10"]["where"].endswith("cifar-10-batches-py")
    assert not rows["cifar100"]["available"] and "cifar-100-python.tar.gz" in rows["cifar100"]["how"]


def test_array_dataset_checks_and_stats():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(DataError, match="labels in \\[0, 5\\] but num_classes=3"):
        ArrayDataset(x, torch.tensor([0, 1, 2, 5]), 3, "image", "t")
    with pytest.raises(DataError, match="must be torch.float32 with 2 dimensions"):
        ArrayDataset(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.int64), 1, "vector", "t")
    ds = ArrayDataset(x, torch.zeros(4, dtype=torch.int64), 1, "image", "t")
    assert ds.in_shape == (1, 2, 2) and len(ds) == 4
    img = torch.tensor([0, 255, 255, 0] * 2, dtype=torch.uint8).reshape(2, 1, 2, 2)
    mean, std = channel_stats(img)
    assert mean == pytest.approx((0.5,)) and std == pytest.approx((0.5,))  # values 0 and 1, half each
