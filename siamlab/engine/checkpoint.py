"""Checkpoint state: what a checkpoint holds, saving it atomically, loading it for an exact resume.

A checkpoint carries model, optimizer, online probe, the position in training (step, epoch, step in
epoch) and every rank's RNG states (torch, CUDA, the augmentation's generators). The data order of
every epoch is a pure function of (seed, epoch) (:mod:`siamlab.data.order`), so resuming from
``last.pt`` continues with bit-identical weights. Rank 0 writes, through a temporary file and a rename
(:func:`~siamlab.engine.runlog.atomic_save`): a kill mid-write leaves the previous checkpoint intact.
Files are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import collectives
from ..errors import SiamlabError
from .build import seed_everything
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


def load(trainer, path: Path) -> None:
    """Restore ``trainer`` from the checkpoint at ``path``; metrics logged after its step are dropped."""
    t = trainer
    if not path.exists():
        raise SiamlabError(f"cannot resume: no checkpoint at {path}; start the run without --resume.")
    try:
        state = torch.load(path, map_location=t.device, weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise SiamlabError(f"cannot resume: {path} is not a readable siamlab checkpoint ({type(err).__name__}).") from None
    t.method.load_state_dict(state["method"])
    t.optimizer.load_state_dict(state["optimizer"])
    if t.probe is not None and state.get("probe") is not None:
        t.probe.load_state_dict(state["probe"])
        t.probe.optimizer.load_state_dict(state["probe_optimizer"])
    t.step, t.epoch, t.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
    t.best_knn, t.random_init = state["best_knn"], state["random_init"]
    rngs = state.get("rng_ranks") or [state["rng"]]
    if t.rank < len(rngs):
        set_rng_state(rngs[t.rank], t.augment, t.device)
    else:  # more processes than the run that wrote the checkpoint: a fresh, distinct stream
        seed_everything(t.cfg.engine.seed + t.rank + 7919 * t.step)
    if collectives.is_main():
        truncate_metrics(t.run_dir / "metrics.jsonl", t.step)
