"""Post-run probes (siamlab.experiments.probes) on streamed data and on bad checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.engine.build import build_run
from siamlab.engine.runlog import atomic_save, atomic_write_text
from siamlab.errors import SiamlabError
from siamlab.experiments.probes import correlation_probe, training_center
from test_stream import make_folder, run_sets


def test_training_center_of_a_streamed_folder_equals_the_in_memory_one(tmp_path):
    """A StreamDataset has no x: the center is taken over the clean squares clean_batches decodes, the same
    pixels the in-memory dataset holds, so with the same augmentation draws the same o_z comes out."""
    folder = make_folder(tmp_path / "imgs", n_train=40, n_val=8)
    built = {s: build_run(config.load(None, run_sets(folder, tmp_path, "r", f"data.stream={s}")), torch.device("cpu"))
             for s in ("false", "true")}
    mem_ds, _, augment, method = built["false"]
    stream_ds = built["true"][0]
    assert not hasattr(stream_ds, "x")
    centers = [training_center(method, ds, augment.manual_seed(3), batch=16) for ds in (mem_ds, stream_ds)]
    assert centers[0].shape == (8,) and centers[0].norm() > 0
    assert torch.allclose(centers[0], centers[1], atol=1e-6)


PROBE_RUN = ["method.name=simsiam", "data.name=digits", "data.train_subset=64", "model.backbone=convnet", "model.width=4",
             "model.proj_hidden=16", "model.proj_out=8", "model.pred_hidden=4"]


def probe_run(tmp_path) -> Path:
    """A run folder with config.yaml and no checkpoint yet."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    atomic_write_text(run / "config.yaml", config.dump(config.load(None, PROBE_RUN)))
    return run


def test_a_corrupt_or_foreign_checkpoint_stops_the_probe_with_one_sentence(tmp_path):
    run = probe_run(tmp_path)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(SiamlabError) as err:
        correlation_probe(run, 0)
    msg = str(err.value)
    assert "\n" not in msg and str(ckpt) in msg and "not a readable siamlab checkpoint" in msg and f"cannot probe {run} (delete that folder" in msg
    other = build_run(config.load(None, PROBE_RUN + ["model.width=8"]), torch.device("cpu"))[3]  # another network
    atomic_save({"method": other.state_dict()}, ckpt)
    with pytest.raises(SiamlabError) as err:
        correlation_probe(run, 0)
    msg = str(err.value)
    assert "\n" not in msg and str(ckpt) in msg and "does not fit this network" in msg and "layer encoder." in msg
