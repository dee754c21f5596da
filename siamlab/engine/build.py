"""What a run is made of: the device, the seeds, and the datasets, augmentation and method of a config."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .. import config as config_mod
from ..errors import ConfigError, SiamlabError
from . import dist

DEVICE_DATA_SHARE = 0.4  # keep the uint8 training set on the GPU when it takes at most this share of free memory


def pick_device(name: str) -> torch.device:
    """``auto`` / ``cuda``: GPU LOCAL_RANK when CUDA is available (one GPU per torchrun process)."""
    if name in ("auto", "cuda"):
        if torch.cuda.is_available():
            local, count = dist.local_rank(), torch.cuda.device_count()
            if local >= count:
                raise ConfigError(f"engine.device={name!r}: process LOCAL_RANK={local} has no GPU of its own (this node has "
                                  f"{count}); start at most {count} processes per node (torchrun --nproc_per_node {count}).")
            return torch.device("cuda", local)
        if name == "auto":
            return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"engine.device={name!r} is not available on this machine (no CUDA GPU); use engine.device=cpu or auto.")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"engine.device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and dist.launched_world_size() > 1:
        raise ConfigError(f"engine.device={name!r} puts every torchrun process on one GPU; use engine.device=cuda "
                          "(process LOCAL_RANK takes GPU LOCAL_RANK).")
    return device


def check_config(cfg: config_mod.RunConfig) -> None:
    """Every check that needs only the config (and the torchrun world size), made before anything is
    loaded, evaluated or written: the dataset and its augmentation preset, the backbone for the data's
    kind, the method(s), their parameters and phases and what each method needs of the rest of the config
    (BRIDGE: method.k divides optim.batch_size), and the batch against the processes and the subset."""
    from ..data import check_data_config
    from ..models.backbones import check_backbone

    kind = check_data_config(cfg.data)
    check_backbone(cfg.model.backbone, kind, f" such as {cfg.data.name}")
    check_method_and_batch(cfg)
    if cfg.data.train_subset and cfg.optim.batch_size > cfg.data.train_subset:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} is larger than data.train_subset="
                          f"{cfg.data.train_subset} training samples; lower the batch or raise the subset.")


def check_method_and_batch(cfg: config_mod.RunConfig) -> None:
    """The method(s), their parameters and phases, and the batch against the torchrun processes."""
    from ..methods.checks import check_method_config

    check_method_config(cfg)
    b, world = cfg.optim.batch_size, dist.launched_world_size()
    if b % world:
        raise ConfigError(f"optim.batch_size={b} is not divisible by the {world} processes; choose a multiple of {world}.")
    ev = cfg.eval
    if ev.best_unsupervised.startswith("lidar_") and not ev.lidar_images:
        raise ConfigError(f"eval.best_unsupervised={ev.best_unsupervised} needs LiDAR, which eval.lidar_images=0 "
                          "turns off; set eval.lidar_images >= 2 or choose a rankme_ or alpha_req_ metric.")


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of training data may live on ``device`` (always on the CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_SHARE * free


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_run(cfg: config_mod.RunConfig, device: torch.device):
    """Datasets, augmentation and method for a config (no training). The network's initial weights depend
    only on ``engine.seed`` and the architecture: the backbone, the projector and the method's heads
    (predictor, prototypes, ...) are each drawn from a seed of their own (:func:`siamlab.models.part_seed`),
    so two arms of an experiment that differ in method, predictor or loss start, for one seed, from the
    same backbone and, where the shapes match, the same projector and predictor (ISSUE 19.1)."""
    from ..data import load_dataset
    from ..data.augment import build_augment
    from ..models import build_encoder

    from ..data.stream import for_device

    train_ds = for_device(load_dataset(cfg.data, "train"), device)
    test_ds = for_device(load_dataset(cfg.data, "test"), device)
    augment = build_augment(cfg.data, train_ds)
    encoder = build_encoder(cfg.model, augment.out_shape, seed=cfg.engine.seed)  # the views' shape: a ViT's image size
    return train_ds, test_ds, augment, method_around(cfg, encoder, len(train_ds), device)


def method_around(cfg: config_mod.RunConfig, encoder, train_samples: int, device: torch.device):
    """The configured method (or phases of methods) around ``encoder``, bound to a training set of
    ``train_samples`` samples, on ``device``. The heads are drawn from the seed part "heads" and what follows
    the build (probe, views) from "after build", so neither depends on what another part drew."""
    from ..methods import build_method
    from ..models import seed_part

    seed_part(cfg.engine.seed, "heads")
    if cfg.phases:
        from ..methods.phased import build_phased

        method = build_phased(cfg, encoder, cfg.model)
    else:
        method = build_method(cfg.method, encoder, cfg.model)
    method.bind_dataset(train_samples)
    seed_part(cfg.engine.seed, "after build")  # what follows (probe, views) does not depend on what the heads drew
    return method.to(device)


def share_cores(train_ds, device: torch.device, threads: int) -> Optional[str]:
    """Training on the CPU from a streamed set: torch threads for the cores its decoding workers leave
    (:func:`siamlab.data.stream.training_threads`), unless ``engine.threads`` (``threads``) says otherwise.
    Returns the line of :func:`siamlab.engine.threads.line` when it changed the count, else None."""
    from ..data.stream import training_threads
    from .threads import line

    if getattr(train_ds, "streamed", False) and device.type == "cpu" and not threads:
        n, workers = training_threads(train_ds.settings), train_ds.settings.worker_count()
        torch.set_num_threads(n)
        return line(n, f"the cores its {workers} decoding worker{'s' if workers != 1 else ''} leave")
    return None


def load_run_config(run_dir: str) -> config_mod.RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise SiamlabError(f"{run_dir!r} is not a siamlab run directory (no config.yaml); pass the folder printed by `siamlab train`.")
    return config_mod.load(str(path))
