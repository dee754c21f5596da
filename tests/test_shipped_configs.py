"""Every shipped config trains a few steps at tiny size (issue 14 item 7).

Each ``configs/*.yaml`` is loaded as shipped — method, backbone, optimizer, augmentation and engine options —
and only the size is overridden: one epoch of a few steps on a few images, heads at most 64 wide (the
2048-wide heads of the GPU configs spend seconds in eigen-decompositions at every evaluation on a CPU).
Configs on CIFAR-100 or Fashion-MNIST read tiny folders this test writes in the official layouts (64 train
and 32 test images), so the test needs neither a download nor the Debian package. What each config
reaches at full size is measured in the README's config list.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from siamlab import config
from siamlab.engine.trainer import train
from test_data import make_fashion_folder

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
TINY = ["optim.epochs=1", "diag.every_steps=1", "data.train_subset=64", "data.test_subset=32", "eval.knn_k=5", "eval.every_epochs=1",
        "engine.progress=false", "engine.device=cpu"]


def write_cifar100(folder: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """A cifar-100-python folder in the official layout (pickled dicts of uint8 rows and fine labels)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [j % 4 for j in range(n)]  # four classes present, so that kNN and NCM have something to do
        (folder / name).write_bytes(pickle.dumps({b"data": rows, b"fine_labels": labels, b"coarse_labels": labels}))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{k}" for k in range(100)]}))
    return folder


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_trains_at_tiny_size(path, tmp_path):
    shipped = config.load(str(path))
    m = shipped.model
    extra = [f"engine.out={tmp_path}", "engine.run_name=tiny", f"optim.batch_size={min(shipped.optim.batch_size, 32)}",
             f"model.proj_hidden={min(m.proj_hidden, 64)}", f"model.proj_out={min(m.proj_out, 64)}",
             f"model.pred_hidden={min(m.pred_hidden, 32)}"]
    if shipped.data.name == "cifar100":
        extra.append(f"data.root={write_cifar100(tmp_path / 'cifar-100-python')}")
    elif shipped.data.name == "fashion_mnist":
        (tmp_path / "fashion").mkdir()
        make_fashion_folder(tmp_path / "fashion", gz=True, n=64)
        extra.append(f"data.root={tmp_path / 'fashion'}")
    else:
        assert shipped.data.name in ("digits", "blobs", "moons", "synthetic"), "write a tiny folder for this dataset too"
    cfg = config.load(str(path), TINY + extra)
    res = train(cfg)
    s = res.summary
    assert s["status"] == "completed", s
    assert s["steps"] == 64 // cfg.optim.batch_size and s["method"] == shipped.method.name
    assert (res.run_dir / "checkpoints" / "last.pt").is_file()
    for key in ("knn_backbone", "knn_projector"):
        assert 0.0 <= s["final"][key] <= 100.0 and 0.0 <= s["random_init"][key] <= 100.0
