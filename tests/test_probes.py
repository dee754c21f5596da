"""Post-run probes (siamlab.experiments.probes) on streamed data and on bad checkpoints."""
from __future__ import annotations

import torch

from siamlab import config
from siamlab.engine.build import build_run
from siamlab.experiments.probes import training_center
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
