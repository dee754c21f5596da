"""Scale presets and the config of one run (experiment × arm × scale × seed).

tiny   seconds per run, a few steps on a small subset: checks plumbing only, its verdicts mean nothing.
smoke  a 2-core CPU in minutes per experiment on built-in data (a Fashion-MNIST subset for images,
       CENTER's toy blobs/moons for vectors), long enough for the mechanism the paper describes to show
       and for the reference arms (SimSiam, SimCLR) to beat the random-init network clearly.
paper  the paper's own settings (ResNet, CIFAR/ImageNet, hundreds of epochs): for a GPU and the
       user's copy of the data (``data.root``), never run here.
"""
from __future__ import annotations

import copy
import dataclasses
import math

from .spec import Experiment, merge

# One thread per run at tiny and smoke: a run's numbers depend on its thread count, so that count must not depend on
# how many runs share the machine: ``reproduce --jobs N`` runs N at once, one per core (:mod:`.pool`), and every
# number is the same for any N. The paper scale leaves ``engine.threads`` to the config (a GPU run).
_ENGINE = {"progress": False, "checkpoint_every_epochs": 1000, "threads": 1}

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
    """The nested config dict of one run, its training length multiplied by ``exp.budget``. A method override with
    a new name drops the old params. An arm whose run is a function (``Arm.run``) gets no scale preset."""
    if arm.run is not None:
        cfg = merge(merge(merge(exp.base, exp.scale_overrides.get(scale, {})), arm.overrides), arm.scale_overrides.get(scale, {}))
        return with_budget(merge(cfg, {"engine": {"seed": int(seed)}}), exp.budget)
    cfg = merge(PRESETS[(scale, exp.data_kind)], exp.base)
    cfg = merge(cfg, exp.scale_overrides.get(scale, {}))
    over = arm.overrides
    new_name = over.get("method", {}).get("name")
    if new_name and new_name != cfg.get("method", {}).get("name"):
        cfg["method"] = {k: v for k, v in cfg.get("method", {}).items() if k not in ("params", "name")}
    cfg = merge(cfg, over)
    cfg = merge(cfg, arm.scale_overrides.get(scale, {}))
    cfg = merge(cfg, {"engine": {"seed": int(seed)}})
    return with_budget(cfg, exp.budget)


def _times(value, budget: float, least: int = 1) -> int:
    return max(least, int(math.floor(value * budget + 0.5)))


def with_budget(cfg: dict, budget: float) -> dict:
    """``cfg`` with its training steps multiplied by ``budget`` (``reproduce --budget``): the epochs (or a function
    arm's ``optim.steps``) and the warm-up, so the schedule keeps its shape (phase starts are scaled where the
    experiment defines them, :func:`budgeted`); the evaluation and diagnostic intervals grow with it, so a run logs as many rows
    whatever its budget (the rules' end-of-run means cover the same fraction of training). Nothing else changes: the
    data, the model, the learning rate. Rounded to whole epochs / steps, at least 1."""
    if budget == 1:
        return cfg
    out = copy.deepcopy(cfg)
    optim, ev, diag = out.get("optim", {}), out.get("eval", {}), out.get("diag", {})
    for key in ("epochs", "steps"):
        if key in optim:
            optim[key] = _times(optim[key], budget)
    if optim.get("warmup_epochs"):
        optim["warmup_epochs"] = _times(optim["warmup_epochs"], budget, 0)
    if "every_epochs" in ev:
        ev["every_epochs"] = _times(ev["every_epochs"], budget)
    if "every_steps" in diag:
        diag["every_steps"] = _times(diag["every_steps"], budget)
    return out


def _phases_times(over: dict, budget: float) -> dict:
    if not over.get("phases"):
        return over
    return {**over, "phases": [{**p, "epoch": _times(p.get("epoch", 0), budget, 0)} for p in over["phases"]]}


def budgeted(exp: Experiment, budget: float) -> Experiment:
    """A copy of ``exp`` whose every arm trains ``budget`` times as many steps (:func:`with_budget`): phase starts
    (ZHANG Fig. 5b) are scaled where the experiment defines them (arms, base, scale overrides), so the rules that read
    them there see the scaled ones, and so are the figures' phase marks (``vlines``)."""
    if budget == 1:
        return exp

    def arm(a):
        return dataclasses.replace(a, overrides=_phases_times(a.overrides, budget),
                                   scale_overrides={s: _phases_times(o, budget) for s, o in a.scale_overrides.items()})

    figures = [dataclasses.replace(f, params={**f.params, "vlines": [v * budget for v in f.params["vlines"]]})
               if f.params.get("vlines") else f for f in exp.figures]
    return dataclasses.replace(exp, budget=budget, figures=figures, arms=[arm(a) for a in exp.arms],
                               base=_phases_times(exp.base, budget),
                               scale_overrides={s: _phases_times(o, budget) for s, o in exp.scale_overrides.items()},
                               arms_by_scale={s: [arm(a) for a in arms] for s, arms in exp.arms_by_scale.items()})


def methods_needed(cfg: dict) -> list[str]:
    """Method names a run config uses (the main method, or every phase's)."""
    if cfg.get("phases"):
        return [p["method"]["name"] for p in cfg["phases"]]
    return [cfg.get("method", {}).get("name", "simsiam")]
