"""``siamlab diagnose MODEL``: collapse diagnostics and evaluation of a model siamlab did not train.

The model (any layout of :mod:`siamlab.interop.layouts`) embeds the clean (un-augmented) images of a
dataset siamlab loads; on those features we report, beside the same numbers for a randomly initialized
copy of the same architecture (SPEC §3: every table has a random-init row):

* the collapse verdict, by the rule training runs use (:func:`collapse_verdict`, which calls
  :func:`siamlab.analysis.verdict.verdicts` on the output's metrics);
* Std and √d·Std of the normalized output (Chen & He), m_o (= ‖center‖, CENTER's s) and m_r (ZHANG §3.1),
  ZHANG A.6's covariance term, ‖Σ − I‖²/d (BRIDGE Fig. 1), L_cor and L_bound with the dataset's K (GEN
  eq. 8, 11), the covariance spectrum and its effective rank, RankMe and α-ReQ — all from
  :meth:`siamlab.analysis.live.LiveDiagnostics.representation_metrics`, on the test split;
* LiDAR (:mod:`siamlab.analysis.labelfree`) on ``eval.lidar_images`` × ``eval.lidar_views`` augmented views of
  training images (``--set eval.lidar_images=0`` turns it off; a streamed dataset has none);
* weighted kNN, GEN's nearest-class-mean accuracy and its Theorem 3 bound (:func:`siamlab.eval.evaluate.evaluate`).

It writes ``diagnosis.json``, plots and a self-contained ``diagnosis.html`` to the output folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import DataError

class Embedder(nn.Module):
    """The method-like object evaluation needs: ``embed(x)`` → {"backbone": h, "projector": z}."""

    def __init__(self, backbone: nn.Module, projector: Optional[nn.Module] = None, repeat_channels: int = 1):
        super().__init__()
        self.backbone, self.projector, self.repeat_channels = backbone, projector, repeat_channels

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict:
        if self.repeat_channels > 1:  # gray images into a 3-channel network
            x = x.repeat(1, self.repeat_channels, 1, 1)
        h = self.backbone(x)
        h = h[0] if isinstance(h, (tuple, list)) else h
        h = h.flatten(1)
        return {"backbone": h} if self.projector is None else {"backbone": h, "projector": self.projector(h)}


def collapse_verdict(metrics: dict, output: str) -> dict:
    """The training runs' collapse rule applied to the clean features of ``output`` ("projector" or
    "backbone"): the rule reads an evaluation record's ``<metric>_projector`` values, so the chosen
    output's metrics are handed to it under that name."""
    from ..analysis.verdict import verdicts

    rec = {"kind": "eval", "step": 0, "epoch": 0}
    rec.update({k: v for k, v in metrics.items() if not k.endswith(("_backbone", "_projector"))})  # e.g. num_classes
    rec.update({f"{k[:-len(output)]}projector": v for k, v in metrics.items() if k.endswith(f"_{output}")})
    return verdicts([rec], "completed")


def _data_config(model, data_name: Optional[str], overrides: list):
    """The config of the data to diagnose on: the file's own data section or ``--data``, then ``--set`` items
    (data.* and eval.* fields only), read as ``siamlab train`` reads them (:func:`siamlab.config.apply_overrides`)."""
    from .. import config

    cfg = config.RunConfig()
    if model.data_cfg and not data_name:
        config.from_dict({"data": model.data_cfg}, cfg)
    elif not data_name:
        raise DataError("the model file does not say which data it was trained on; pass --data NAME (see `siamlab datasets`).")
    if data_name:
        config.set_field(cfg, "data.name", data_name)
    for item in overrides or []:
        if "=" not in item or not item.split("=", 1)[0].strip().startswith(("data.", "eval.")):
            raise DataError(f"--set {item!r}: diagnose takes data.* and eval.* fields only, as key=value (e.g. data.root=/data).")
    return config.apply_overrides(cfg, overrides)


def _channels(model, train_ds, augment) -> int:
    """How many times to repeat the image channels for the network (1 = as they are); one sentence if they cannot fit."""
    if train_ds.kind != "image":
        return 1
    c = int(train_ds.in_shape[0])  # in memory (x) or streamed from disk (StreamDataset: no x)
    if model.in_channels is not None:
        if model.in_channels == c:
            return 1
        if c == 1:
            return model.in_channels
        raise DataError(f"the network takes {model.in_channels}-channel input but {train_ds.name} has {c} channels; "
                        "pick a dataset with matching images.")
    from ..eval.features import image_batches

    probe = augment.clean(next(iter(image_batches(train_ds, 0, min(2, len(train_ds)), 2))))
    for rep in (1, 3):
        try:
            Embedder(model.backbone, None, rep).eval().embed(probe)
            return rep
        except Exception as err:  # TorchScript: only trying tells whether the input fits
            last = err
    first = (str(last).strip().splitlines() or [type(last).__name__])[-1][:200]
    raise DataError(f"the TorchScript module does not run on {train_ds.name} images of shape {tuple(probe.shape[1:])} ({first}).")


def _measure(net: Embedder, train_ds, test_ds, augment, eval_cfg, seed: int = 0) -> tuple:
    from ..analysis import metrics as M
    from ..analysis.labelfree import lidar_metrics
    from ..analysis.live import LiveDiagnostics
    from ..eval.evaluate import evaluate
    from ..eval.features import embed_views

    feats: dict = {}
    res = evaluate(net, train_ds, test_ds, augment, eval_cfg, batch_size=256, on_features=feats.update)
    rep = LiveDiagnostics(net, 0).representation_metrics(feats, test_ds.y, test_ds.num_classes)
    if eval_cfg.lidar_images:
        rep.update(lidar_metrics(embed_views(net, train_ds, augment, eval_cfg.lidar_images, eval_cfg.lidar_views, seed)))
    spectra = {}
    for name, f in feats.items():
        if torch.isfinite(f).all():
            rep[f"std_{name}"] = float(M.std_of_normalized(f))
            spectra[name] = M.covariance_spectrum(f).tolist()
    dims = {name: int(f.shape[1]) for name, f in feats.items()}
    return {**rep, **res}, spectra, dims


def diagnose(model_path, data: Optional[str] = None, projector: Optional[str] = None, out_dir: Optional[str] = None,
             overrides: Optional[list] = None, seed: int = 0) -> dict:
    """Diagnose ``model_path``; returns the ``diagnosis.json`` content plus ``out_dir`` and ``html``."""
    from ..data import load_dataset
    from ..data.augment import build_augment
    from ..report.files import write_result
    from .layouts import load_model
    from .page import write_page

    model = load_model(model_path, projector)
    for note in model.notes:  # what the file holds but diagnose does not read: said once, never dropped silently
        print(f"note: {note}", file=sys.stderr, flush=True)
    cfg = _data_config(model, data, overrides or [])
    train_ds, test_ds = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "test")
    augment = build_augment(cfg.data, train_ds)
    rep = _channels(model, train_ds, augment)
    torch.manual_seed(seed)
    output = "projector" if model.projector is not None else "backbone"
    result = {"model": str(model_path), "projector_file": projector, "layout": model.layout, "dataset": test_ds.name,
              "num_classes": test_ds.num_classes, "train_samples": len(train_ds), "test_samples": len(test_ds),
              "output": output, "notes": model.notes, "networks": {}}
    for which, (bb, pj) in (("trained", (model.backbone, model.projector)),
                            ("random_init", (model.random_backbone, model.random_projector))):
        print(f"diagnose: {which.replace('_', ' ')} network on {len(train_ds)} + {len(test_ds)} {test_ds.name} samples ...",
              file=sys.stderr, flush=True)
        metrics, spectra, dims = _measure(Embedder(bb, pj, rep), train_ds, test_ds, augment, cfg.eval, seed)
        result["networks"][which] = {"metrics": metrics, "spectra": spectra, "dims": dims,
                                     "verdict": collapse_verdict(metrics, output)}
    out = Path(out_dir) if out_dir else Path("runs") / "diagnose" / Path(model_path).name.split(".")[0]
    out.mkdir(parents=True, exist_ok=True)
    write_result(out / "diagnosis.json", json.dumps(result, indent=1, default=str) + "\n")
    result["html"] = str(write_page(result, out))
    result["out_dir"] = str(out)
    return result


def summary_text(result: dict) -> str:
    """The console table: each metric of each feature, random init beside trained, and the verdicts."""
    from .page import fmt, metric_rows

    rows = metric_rows(result)
    width = max([len(r[0]) for r in rows] + [6])
    lines = [f"model: {result['model']} ({result['layout']})  data: {result['dataset']} (K = {result['num_classes']})",
             f"{'metric':<{width}}  {'random init':>11}  {'trained':>9}"]
    lines += [f"{k:<{width}}  {fmt(r):>11}  {fmt(t):>9}" for k, r, t in rows]
    from ..analysis.verdict import explain

    for w in ("random_init", "trained"):
        v = result["networks"][w]["verdict"]
        lines.append(f"verdict ({w.replace('_', ' ')}, {result['output']}): {v['verdict']}  ({explain(v)})")
    lines.append(f"rule: {result['networks']['trained']['verdict']['rule']}")
    return "\n".join(lines)
