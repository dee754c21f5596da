"""Evaluate a finished (or interrupted) run from its checkpoint, next to the same network at random init."""
from __future__ import annotations

from pathlib import Path

from .build import build_run, check_config, load_run_config, pick_device, seed_everything, share_cores
from .checkpoint import check_fits, read
from .threads import set_threads


def evaluate_run(run_dir: str, checkpoint: str = "last", linear: bool = False, linear_epochs: int = 50,
                 progress: bool = False) -> dict:
    """kNN (+ NCM, + optional offline linear probe) of the checkpoint and of the random-init network.

    The random-init network is rebuilt from the run's config and seed, so it is exactly the network the
    run started from; the checkpoint is then loaded into it. A checkpoint that is missing, unreadable or
    does not fit the run's network (another architecture or config: the first differing layer or key is
    named) is refused in one sentence before anything is evaluated. ``progress``: bars on stderr while
    each network embeds the two splits and fits the linear probe.
    """
    from ..eval.evaluate import evaluate
    from ..eval.linear import linear_probe

    cfg = load_run_config(run_dir)
    check_config(cfg)
    device = pick_device(cfg.engine.device)
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    state = read(path, device, what="cannot evaluate")
    set_threads(cfg.engine.threads)  # the run's count: evaluation's sums depend on it too
    seed_everything(cfg.engine.seed)
    train_ds, test_ds, augment, method = build_run(cfg, device)
    share_cores(train_ds, device, cfg.engine.threads)
    check_fits(state, method, cfg, path, what="cannot evaluate")
    results = {}
    for which in ("random init", "trained"):
        if which == "trained":
            method.load_state_dict(state["method"])
        feats = {}
        label = which if progress else None
        res = evaluate(method, train_ds, test_ds, augment, cfg.eval, batch_size=512, progress=label,
                       on_features=lambda f: feats.update(test=f["backbone"]),
                       on_train_features=lambda f: feats.update(train=f["backbone"]))
        if linear:
            lp = linear_probe(feats["train"], train_ds.y, feats["test"], test_ds.y, train_ds.num_classes,
                              epochs=linear_epochs, seed=cfg.engine.seed, progress=label and f"{label}: linear probe")
            res["linear_top1"] = lp["top1"]
        results[which.replace(" ", "_")] = res
    return results
