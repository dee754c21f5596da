"""Scale presets and the config of one run (experiment × arm × scale × seed).

tiny   seconds per run, a few steps on a small subset: checks plumbing only, its verdicts mean nothing.
smoke  a 2-core CPU in minutes per experiment on built-in data (a Fashion-MNIST subset for images,
       CENTER's toy blobs/moons for vectors), long enough for the mechanism the paper describes to show
       and for the reference arms (SimSiam, SimCLR) to beat the random-init network clearly.
paper  the paper's own settings (ResNet, CIFAR/ImageNet, hundreds of epochs): for a GPU and the
       user's copy of the data (``data.root``), never run here.
"""
from __future__ import annotations

from .spec import Experiment, merge

_ENGINE = {"progress": False, "checkpoint_every_epochs": 1000}

PRESETS = {
    ("tiny", "image"): {
        "data": {"name": "digits", "train_subset": 160, "test_subset": 80},
        "model": {"backbone": "convnet", "width": 8, "proj_hidden": 32, "proj_out": 32, "pred_hidden": 16},
        "optim": {"epochs": 1, "batch_size": 32, "lr": 0.05, "weight_decay": 5e-4},
        "eval": {"knn_k": 10, "every_epochs": 1, "online_probe": False},
        "diag": {"every_steps": 2},
        "engine": _ENGINE,
    },
    ("tiny", "vector"): {
        "data": {"name": "blobs", "train_subset": 160, "test_subset": 80},
        "model": {"backbone": "mlp", "width": 16, "proj_hidden": 16, "proj_out": 8, "pred_hidden": 8},
        "optim": {"epochs": 1, "batch_size": 32, "lr": 0.05, "weight_decay": 5e-4},
        "eval": {"knn_k": 10, "every_epochs": 1, "online_probe": False},
        "diag": {"every_steps": 2},
        "engine": _ENGINE,
    },
    # Chosen on the 2-core CPU so that the reference arms (SimSiam, SimCLR) beat their random-init network within
    # 20 epochs of about a minute each; width 8 learned faster per CPU second than 16 and left more room above
    # random init. What they reach is in each experiment's table (its random-init row and the reference arm), not
    # here. ZHANG A.1's augmentation and base lr (0.5·B/256); see papers.common.SMOKE_IMAGE_NOTE for every deviation.
    ("smoke", "image"): {
        "data": {"name": "fashion_mnist", "train_subset": 5000, "test_subset": 2000, "augment": "zhang_a1"},
        "model": {"backbone": "convnet", "width": 8, "proj_hidden": 256, "proj_out": 256, "pred_hidden": 64},
        "optim": {"epochs": 20, "batch_size": 128, "lr": 0.5, "weight_decay": 5e-4, "warmup_epochs": 0},
        "eval": {"knn_k": 20, "every_epochs": 5, "online_probe": False},
        "diag": {"every_steps": 10},
        "engine": _ENGINE,
    },
    ("smoke", "vector"): {
        "data": {"name": "blobs"},
        "model": {"backbone": "mlp", "width": 64, "proj_hidden": 64, "proj_out": 16, "pred_hidden": 16},
        "optim": {"epochs": 20, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4},
        "eval": {"knn_k": 20, "every_epochs": 1, "online_probe": False},
        "diag": {"every_steps": 5},
        "engine": _ENGINE,
    },
    # ZHANG A.1 (CIFAR-100, ResNet-18, SimSiam projector/predictor, SGD lr 0.5·M/256, wd 1e-5,
    # 10 warm-up epochs, 1000 epochs); experiments of the other papers override what differs.
    ("paper", "image"): {
        "data": {"name": "cifar100", "augment": "zhang_a1"},
        "model": {"backbone": "resnet18", "stem": "cifar", "proj_hidden": 2048, "proj_out": 2048, "proj_layers": 3, "pred_hidden": 512},
        "optim": {"name": "sgd", "epochs": 1000, "batch_size": 256, "lr": 0.5, "weight_decay": 1e-5, "momentum": 0.9, "warmup_epochs": 10},
        "eval": {"knn_k": 200, "knn_t": 0.1, "every_epochs": 10, "online_probe": True, "probe_lr": 0.1,
                 "lidar_images": 1000, "lidar_views": 50},  # LiDAR as Thilak et al. (n, q)
        "diag": {"every_steps": 100},
        "engine": {"progress": True, "checkpoint_every_epochs": 10},
    },
    ("paper", "vector"): {
        "data": {"name": "blobs"},
        "model": {"backbone": "mlp", "width": 64, "proj_hidden": 64, "proj_out": 16, "pred_hidden": 16},
        "optim": {"epochs": 100, "batch_size": 128, "lr": 0.1},
        "eval": {"knn_k": 20, "every_epochs": 1},
        "diag": {"every_steps": 5},
        "engine": {"progress": True, "checkpoint_every_epochs": 10},
    },
}


def arm_config(exp: Experiment, arm, scale: str, seed: int) -> dict:
    """The nested config dict of one run. A method override with a new name drops the old params."""
    cfg = merge(PRESETS[(scale, exp.data_kind)], exp.base)
    cfg = merge(cfg, exp.scale_overrides.get(scale, {}))
    over = arm.overrides
    new_name = over.get("method", {}).get("name")
    if new_name and new_name != cfg.get("method", {}).get("name"):
        cfg["method"] = {k: v for k, v in cfg.get("method", {}).items() if k not in ("params", "name")}
    cfg = merge(cfg, over)
    cfg = merge(cfg, arm.scale_overrides.get(scale, {}))
    cfg = merge(cfg, {"engine": {"seed": int(seed)}})
    return cfg


def methods_needed(cfg: dict) -> list[str]:
    """Method names a run config uses (the main method, or every phase's)."""
    if cfg.get("phases"):
        return [p["method"]["name"] for p in cfg["phases"]]
    return [cfg.get("method", {}).get("name", "simsiam")]
