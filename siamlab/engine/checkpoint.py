"""Checkpoint state: what a checkpoint holds, saving it atomically, loading it for an exact resume.

A checkpoint carries model, optimizer, online probe, the position in training (step, epoch, step in
epoch) and every rank's RNG states (torch, CUDA, the augmentation's generators). The data order of
every epoch is a pure function of (seed, epoch) (:mod:`siamlab.data.order`), so resuming from
``last.pt`` continues with bit-identical weights. Rank 0 writes, through a temporary file and a rename
(:func:`~siamlab.engine.runlog.atomic_save`): a kill mid-write leaves the previous checkpoint intact.
Files are read with ``torch.load(weights_only=True)``; a checkpoint that does not fit the run (another
architecture or config, foreign or missing layers, no training state) is refused in one sentence naming
the first layer or config key that differs (:func:`check_fits`), for ``--resume`` and ``siamlab eval``. A config
field the checkpoint predates (``data.stream`` ...) counts as its default (:func:`siamlab.config.differences`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import collectives
from .. import config as config_mod
from ..errors import SiamlabError
from ..methods import param_defaults
from .build import seed_everything
from .failures import first_line
from .runlog import atomic_save, truncate_metrics

CKPT_VERSION = 1


def rng_state(augment, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if hasattr(augment, "state_dict"):
        state["augment"] = augment.state_dict()
    return state


def _on_cpu(obj):
    """RNG states must be CPU ByteTensors (a checkpoint loaded with map_location=cuda has them on the GPU)."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def set_rng_state(state: dict, augment, device: torch.device) -> None:
    state = _on_cpu(state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    if "augment" in state and hasattr(augment, "load_state_dict"):
        augment.load_state_dict(state["augment"])


def checkpoint_state(trainer, rng_ranks: list) -> dict:
    """The checkpoint's contents (``rng_ranks``: every rank's :func:`rng_state`, in rank order)."""
    t = trainer
    return {
        "version": CKPT_VERSION,
        "method": t.method.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "probe": t.probe.state_dict() if t.probe is not None else None,
        "probe_optimizer": t.probe.optimizer.state_dict() if t.probe is not None else None,
        "step": t.step,
        "epoch": t.epoch,
        "step_in_epoch": t.step_in_epoch,
        "best_knn": t.best_knn,
        "best_unsupervised": t.best_unsupervised,
        "random_init": t.random_init,
        "rng": rng_ranks[0],
        "rng_ranks": rng_ranks,
        "world_size": t.world,
        "config": t.cfg.to_dict(),
    }


def save(trainer, name: str = "last.pt") -> None:
    """Rank 0 writes ``RUN/checkpoints/<name>`` (every rank calls this: the RNG states of all ranks are gathered)."""
    rng_ranks = collectives.gather_objects(rng_state(trainer.augment, trainer.device))
    if collectives.is_main():
        atomic_save(checkpoint_state(trainer, rng_ranks), trainer.ckpt_dir / name)


RESUME_KEYS = ("method", "optimizer", "step", "epoch", "step_in_epoch", "best_knn", "random_init")
# What decides the network and the data it learns from; a checkpoint written under other values is refused
# (optim, eval, diag and engine may differ: an edited schedule is the user's choice).
WEIGHT_SECTIONS = ("method", "model", "data", "phases")
# Where the data lives and how it is read (results do not depend on them: siamlab/data/feed.py): may differ.
WHERE_KEYS = {"data.root", "data.on_device", "data.workers"}
# What a resumed run may be told for that invocation (``--resume --set``; config.yaml keeps the run's values).
RESUME_SETTABLE = ("engine.progress", "engine.threads", "engine.device", "data.root", "data.workers")


def read(path: Path, device, what: str = "cannot resume") -> dict:
    """The checkpoint at ``path`` (``torch.load(weights_only=True)``: tensors and plain containers only), or
    one sentence when it is missing, unreadable or not a siamlab checkpoint."""
    if not path.exists():
        raise SiamlabError(f"{what}: no checkpoint at {path}; the run has not saved one yet (checkpoints are written "
                           "at the end of an epoch and when the run is stopped).")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # corrupt, truncated, or a pickle that is more than weights
        raise SiamlabError(f"{what}: {path} is not a readable siamlab checkpoint ({type(err).__name__}); "
                           "use a checkpoint written by `siamlab train`.") from None
    if not isinstance(state, dict) or not isinstance(state.get("method"), dict):
        raise SiamlabError(f"{what}: {path} is not a siamlab checkpoint (it has no 'method' weights; a bare "
                           "state_dict is not enough); use a checkpoint written by `siamlab train`.")
    return state


def _shape(v) -> tuple:
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def config_differences(saved: dict, cfg) -> list:
    """``(key, saved value, this run's value)`` for each field of :data:`WEIGHT_SECTIONS` where the checkpoint's
    stored config ``saved`` and ``cfg`` differ (:func:`siamlab.config.differences`: a field the checkpoint predates
    counts as equal when this run holds its default), minus :data:`WHERE_KEYS`."""
    defaults = config_mod.RunConfig().to_dict()
    defaults["method"]["params"] = param_defaults(cfg.method.name)
    current = cfg.to_dict()
    current["method"]["params"] = {**defaults["method"]["params"], **current["method"]["params"]}  # knobs as they act
    return [d for d in config_mod.differences(saved, current, WEIGHT_SECTIONS, defaults) if d[0] not in WHERE_KEYS]


def _written_with(key: str, saved, current) -> str:
    if saved == config_mod.NOT_SET:
        return f"was written before {key} existed (so with its default) where this run has {key}={current!r}"
    return f"was written with {key}={saved!r} where this run has {key}={current!r}"


def check_fits(state: dict, method, cfg, path: Path, what: str = "cannot resume") -> None:
    """One sentence naming the first layer (or config key) where the checkpoint ``state`` and the network
    ``method`` built from ``cfg`` differ: a foreign or missing layer, another shape, another config."""
    saved_cfg = state.get("config") if isinstance(state.get("config"), dict) else None
    diff = config_differences(saved_cfg, cfg) if saved_cfg is not None else []
    wrote = _written_with(*diff[0]) if diff else ""
    fix = "use the checkpoint of this run, or the config that wrote it"
    own, theirs = method.state_dict(), state["method"]
    missing = [k for k in own if k not in theirs]
    foreign = [k for k in theirs if k not in own]
    shapes = [k for k in own if k in theirs and _shape(own[k]) != _shape(theirs[k])]
    if missing or foreign or shapes:
        if shapes:
            k = shapes[0]
            first = f"layer {k} is {_shape(theirs[k])} in the checkpoint but {_shape(own[k])} in this network"
        elif missing:
            first = f"layer {missing[0]} of this network is missing from the checkpoint"
        else:
            first = f"the checkpoint has layer {foreign[0]}, which this network does not"
        more = len(shapes) + len(missing) + len(foreign) - 1
        raise SiamlabError(f"{what}: {path} does not fit this network: {first}"
                           + (f" (and {more} more)" if more else "") + (f"; the checkpoint {wrote}" if wrote else "")
                           + f"; {fix}.")
    if diff:
        raise SiamlabError(f"{what}: {path} {wrote} (config.yaml of the run directory); {fix}.")


def load(trainer, path: Path) -> None:
    """Restore ``trainer`` from the checkpoint at ``path``; metrics logged after its step are dropped."""
    t = trainer
    state = read(path, t.device)
    check_fits(state, t.method, t.cfg, path)
    lacking = [k for k in RESUME_KEYS if k not in state] + ([] if ("rng" in state or "rng_ranks" in state) else ["rng"])
    if lacking:
        raise SiamlabError(f"cannot resume: {path} lacks {', '.join(repr(k) for k in lacking)}, so training cannot "
                           "continue exactly; `siamlab eval` can still read its weights, or start a new run.")
    t.method.load_state_dict(state["method"])
    try:
        t.optimizer.load_state_dict(state["optimizer"])
        if t.probe is not None and state.get("probe") is not None:
            t.probe.load_state_dict(state["probe"])
            t.probe.optimizer.load_state_dict(state["probe_optimizer"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise SiamlabError(f"cannot resume: the optimizer or probe state in {path} does not fit this run "
                           f"({first_line(err)}); use the checkpoint of this run.") from None
    t.step, t.epoch, t.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
    t.best_knn, t.random_init = state["best_knn"], state["random_init"]
    t.best_unsupervised = float(state.get("best_unsupervised", -math.inf))  # older checkpoints: none chosen yet
    rngs = state.get("rng_ranks") or [state["rng"]]
    if t.rank < len(rngs):
        set_rng_state(rngs[t.rank], t.augment, t.device)
    else:  # more processes than the run that wrote the checkpoint: a fresh, distinct stream
        seed_everything(t.cfg.engine.seed + t.rank + 7919 * t.step)
    if collectives.is_main():
        truncate_metrics(t.run_dir / "metrics.jsonl", t.step)
