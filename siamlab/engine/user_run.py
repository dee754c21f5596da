"""``siamlab.fit``: train any method on a Python program's own ``nn.Module`` backbone and map-style ``Dataset``.

The dataset is read once into memory (:mod:`siamlab.data.user`), so the run is an ordinary siamlab run:
batched augmentation on the device, live diagnostics, checkpoints, exact resume, ``siamlab analyze``. Its
``config.yaml`` says ``data.name: user`` and ``model.backbone: user``; ``RUN/user_inputs.json`` records what
was passed (the backbone's class and output size; each dataset's size, image shape, labels and sha256), and a
resumed run must be given the same data (refused in one sentence otherwise) and a backbone that fits the
checkpoint (:func:`siamlab.engine.checkpoint.check_fits` names the first layer that does not).
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .. import collectives
from .. import config as config_mod
from ..data.augment import build_augment
from ..data.dataset import subset
from ..data.user import USER_DATA, fingerprint, read_dataset
from ..errors import ConfigError, SiamlabError
from ..models import Encoder, projection_mlp
from ..models.backbones import USER_BACKBONE
from .build import check_method_and_batch, load_run_config, method_around
from .checkpoint import RESUME_SETTABLE
from .loop import RunResult
from .runlog import atomic_write_text
from .trainer import Trainer, train

INPUTS_FILE = "user_inputs.json"
SECTIONS = ("data", "model", "optim", "eval", "diag", "engine", "phases")


class UserTrainer(Trainer):
    """A :class:`Trainer` whose backbone, datasets and augmentation were given in Python (``parts``, from :func:`fit`)."""

    def __init__(self, cfg, run_dir: Optional[Path] = None, resume: bool = False, overwrite: bool = False, *,
                 parts: dict):
        self.parts = parts
        super().__init__(cfg, run_dir, resume=resume, overwrite=overwrite)

    def check_config(self) -> None:
        check_method_and_batch(self.cfg)

    def build_parts(self) -> tuple:
        p, m = self.parts, self.cfg.model
        projector = projection_mlp(p["out_dim"], m.proj_hidden, m.proj_out, m.proj_layers, final_bn=m.proj_final_bn)
        method = method_around(self.cfg, Encoder(p["backbone"], projector, m.proj_out), len(p["train"]), self.device)
        if collectives.is_main() and not (self.run_dir / INPUTS_FILE).exists():
            atomic_write_text(self.run_dir / INPUTS_FILE, json.dumps(p["inputs"], indent=1) + "\n")
        return p["train"], p["test"], p["augment"], method

    @property
    def reference_set(self):
        return self.parts["reference"]


def _method_section(method) -> dict:
    if method is None:
        return {}
    if isinstance(method, str):
        return {"name": method}
    if isinstance(method, dict):
        return dict(method)
    raise ConfigError(f"method={method!r} is not valid: expected a method name (see `siamlab methods`) or a mapping "
                      "such as {'name': 'simsiam', 'predictor': 'linear'}.")


def _sections(sections: dict) -> dict:
    for name, body in sections.items():
        if name not in SECTIONS:
            raise ConfigError(f"siamlab.fit got the keyword {name}=...; config sections are {', '.join(SECTIONS)} "
                              "(each a mapping, e.g. optim={'epochs': 10}), besides method, out, test, out_dim and resume.")
        if name != "phases" and not isinstance(body, dict):
            raise ConfigError(f"{name}={body!r} is not valid: expected a mapping of {name} fields, e.g. "
                              f"{name}={{'field': value}}.")
    for key in ("data.name", "model.backbone"):
        section, field = key.split(".")
        if field in sections.get(section, {}):
            raise ConfigError(f"{key} cannot be set for siamlab.fit: the dataset and the backbone are the objects "
                              "passed to it; remove the key.")
    return sections


def new_config(method, out: Optional[str], sections: dict) -> config_mod.RunConfig:
    """The config of a new run: siamlab's defaults, then what ``fit`` was given. A user run trains on the
    whole dataset (``data.train_subset=0`` unless set)."""
    cfg = config_mod.RunConfig()
    cfg.data.train_subset = 0
    config_mod.from_dict({"method": _method_section(method), **_sections(sections)}, cfg)
    cfg.data.name, cfg.model.backbone = USER_DATA, USER_BACKBONE
    if out:
        cfg.engine.out, cfg.engine.run_name = str(Path(out).parent), Path(out).name
    return cfg


def resumed_config(run: str, method, sections: dict) -> config_mod.RunConfig:
    """The config of the run in ``run``; ``sections`` may set only :data:`RESUME_SETTABLE` keys."""
    cfg = load_run_config(run)
    if cfg.data.name != USER_DATA:
        raise SiamlabError(f"{run!r} is a run of data.name={cfg.data.name!r}, not one of siamlab.fit; resume it with "
                           f"`siamlab train --resume {run}`.")
    wanted = _method_section(method).get("name")
    if wanted is not None and wanted != cfg.method.name:
        raise SiamlabError(f"{run!r} trains method {cfg.method.name!r}, not {wanted!r}; resume it without method= or "
                           "start a new run.")
    for section, body in _sections(sections).items():
        for key in (body if isinstance(body, dict) else {"": None}):
            if f"{section}.{key}" not in RESUME_SETTABLE:
                raise SiamlabError(f"{section}.{key} cannot change a run being resumed; only "
                                   f"{', '.join(RESUME_SETTABLE)} can.")
    return config_mod.from_dict(sections, cfg)


def out_dim_of(backbone: nn.Module, example: torch.Tensor, out_dim: Optional[int]) -> int:
    """The size of the backbone's features: ``out_dim`` when given, else its ``out_dim`` attribute, else found
    by one forward pass in eval mode without gradients (the module's mode is restored). Features must be
    ``[batch, dim]``; anything else is one sentence."""
    if out_dim is not None or isinstance(getattr(backbone, "out_dim", None), int):
        return int(out_dim if out_dim is not None else backbone.out_dim)
    param = next(backbone.parameters(), None)
    example = example.to(param.device) if param is not None else example
    was_training = backbone.training
    try:
        with torch.no_grad():
            h = backbone.eval()(example)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise SiamlabError(f"the backbone failed on a batch of the dataset's images of shape {tuple(example.shape)} "
                           f"({type(err).__name__}: {first}); make it take [batch, C, H, W] float images "
                           "(data.image_size sets H and W).") from None
    finally:
        backbone.train(was_training)
    if not isinstance(h, torch.Tensor) or h.ndim != 2:
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise SiamlabError(f"the backbone returns {shape} for a batch of shape {tuple(example.shape)}; siamlab needs "
                           "pooled features [batch, dim] (end it with nn.AdaptiveAvgPool2d(1) and nn.Flatten()).")
    return int(h.shape[1])


def read_inputs(dataset, test, cfg) -> dict:
    """The datasets held in memory — training set, test set (None: no evaluation) and the labelled reference set
    evaluation fits on (kNN bank, class means), in one label space — whether the training set is labelled, and
    what identifies each (:func:`~siamlab.data.user.fingerprint`)."""
    def read(ds, what: str, size: int) -> tuple:
        arr, labelled = read_dataset(ds, what, cfg.data.workers or 0, cfg.engine.progress)
        return subset(arr, size), labelled

    sets = {"dataset": read(dataset, "dataset", cfg.data.train_subset)}
    if test is not None:
        ref, test = test if isinstance(test, (tuple, list)) else (None, test)
        if ref is not None:
            sets["reference set"] = read(ref, "reference set", 0)
        sets["test set"] = read(test, "test set", cfg.data.test_subset)
        ref_name = "reference set" if ref is not None else "dataset"
        bare = next((n for n in ("test set", ref_name) if not sets[n][1]), None)
        if bare:
            raise SiamlabError(f"the {bare} has no labels, which evaluation needs; label its items, or pass "
                               "test=(labelled_reference, labelled_test) for a dataset without labels.")
    k = max(ds.num_classes for ds, _ in sets.values())
    sets = {name: (replace(ds, num_classes=k), labelled) for name, (ds, labelled) in sets.items()}
    train = sets["dataset"][0]
    return {"train": train, "test": sets.get("test set", (None,))[0],
            "reference": sets.get("reference set", (train,))[0], "labelled": sets["dataset"][1],
            "datasets": {name: fingerprint(ds, labelled) for name, (ds, labelled) in sets.items()}}


def check_same_data(run: Path, datasets: dict) -> None:
    """A resumed run is given the data it was started with; else one sentence naming the first difference."""
    path = run / INPUTS_FILE
    if not path.is_file():
        raise SiamlabError(f"cannot resume {str(run)!r}: it has no {INPUTS_FILE}, so siamlab.fit did not start it.")
    saved = json.loads(path.read_text()).get("datasets", {})
    for name in dict.fromkeys([*saved, *datasets]):
        was, now = saved.get(name), datasets.get(name)
        if was == now:
            continue
        if was is None or now is None:
            raise SiamlabError(f"cannot resume {str(run)!r}: it was started {'without' if was is None else 'with'} a "
                               f"{name} and this call passes {'one' if was is None else 'none'}; pass what it was started with.")
        key = next(k for k in now if was.get(k) != now[k])
        what = "other images or labels" if key == "sha256" else f"{key} {now[key]!r} instead of {was.get(key)!r}"
        raise SiamlabError(f"cannot resume {str(run)!r}: the {name} passed has {what}; pass the {name} it was started with.")


def fit(backbone: nn.Module, dataset, method: Union[str, dict, None] = None, out: Optional[str] = None, *,
        test=None, out_dim: Optional[int] = None, resume: Optional[str] = None, overwrite: bool = False,
        **sections) -> RunResult:
    """Train ``method`` on ``backbone`` (trained in place) with ``dataset``; see README "Your own backbone and data"."""
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"backbone is a {type(backbone).__name__}; siamlab.fit trains a torch.nn.Module.")
    cfg = resumed_config(str(resume), method, sections) if resume is not None else new_config(method, out, sections)
    check_method_and_batch(cfg)
    parts = read_inputs(dataset, test, cfg)
    if resume is not None:
        check_same_data(Path(resume), parts["datasets"])
    elif not parts["labelled"] and cfg.eval.online_probe:
        if sections.get("eval", {}).get("online_probe"):
            raise ConfigError("eval.online_probe=true needs labels and the dataset has none; label its items or remove the key.")
        cfg.eval.online_probe = False  # nothing to probe: the saved config says so
    augment = build_augment(cfg.data, parts["train"])
    dim = out_dim_of(backbone, augment.clean(parts["train"].x[:2]), out_dim)
    backbone.out_dim = dim  # what siamlab's backbones carry (the online probe reads it)
    inputs = {"backbone": f"{type(backbone).__module__}.{type(backbone).__qualname__}", "out_dim": dim,
              "datasets": parts["datasets"]}
    parts.update(backbone=backbone, out_dim=dim, inputs=inputs, augment=augment)
    return train(cfg, str(resume) if resume is not None else None, resume is not None, overwrite,
                 make=partial(UserTrainer, parts=parts))
