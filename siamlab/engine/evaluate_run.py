"""Evaluate a finished (or interrupted) run from its checkpoint, next to the same network at random init."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import SiamlabError
from .build import build_run, load_run_config, pick_device, seed_everything


def _load_weights(method, path: Path, device) -> None:
    if not path.exists():
        raise SiamlabError(f"no checkpoint at {path}; the run has not finished an epoch yet (try --checkpoint last).")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise SiamlabError(f"{path} is not a readable siamlab checkpoint ({type(err).__name__}).") from None
    method.load_state_dict(state["method"])


def evaluate_run(run_dir: str, checkpoint: str = "last", linear: bool = False, linear_epochs: int = 50) -> dict:
    """kNN (+ NCM, + optional offline linear probe) of the checkpoint and of the random-init network.

    The random-init network is rebuilt from the run's config and seed, so it is exactly the
    network the run started from.
    """
    from ..eval.evaluate import evaluate
    from ..eval.features import extract_features
    from ..eval.linear import linear_probe

    cfg = load_run_config(run_dir)
    device = pick_device(cfg.engine.device)
    results = {}
    for which in ("random_init", "trained"):
        seed_everything(cfg.engine.seed)
        train_ds, test_ds, augment, method = build_run(cfg, device)
        if which == "trained":
            _load_weights(method, Path(run_dir) / "checkpoints" / f"{checkpoint}.pt", device)
        res = evaluate(method, train_ds, test_ds, augment, cfg.eval, batch_size=512)
        if linear:
            ftr = extract_features(method, train_ds, augment, device=device)["backbone"]
            fte = extract_features(method, test_ds, augment, device=device)["backbone"]
            lp = linear_probe(ftr, train_ds.y, fte, test_ds.y, train_ds.num_classes, epochs=linear_epochs, seed=cfg.engine.seed)
            res["linear_top1"] = lp["top1"]
        results[which] = res
    return results
