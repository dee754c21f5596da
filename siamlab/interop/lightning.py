"""A Lightning callback on top of :class:`siamlab.interop.monitor.Monitor` (optional: needs ``lightning``).

Return the views' embeddings from ``training_step`` next to the loss and add the callback::

    def training_step(self, batch, batch_idx):
        ...
        return {"loss": loss, "z": [z1, z2], "p": [p1, p2]}      # "p" only if there is a predictor

    trainer = lightning.Trainer(callbacks=[SiamlabCallback(every=50, loss_fn=my_loss)])

The diagnostics go to ``<out_dir>/metrics.jsonl`` (default ``<trainer.default_root_dir>/siamlab``),
which ``siamlab analyze`` reads, and — as ``siamlab/<name>`` scalars at the same step — to every logger of
the trainer (``trainer.loggers``: TensorBoard, CSV, W&B ...), so they sit in the run the trainer already
logs. When the trainer has loggers, the Monitor's own files are ``metrics.jsonl`` and ``metrics.csv`` (no
second TensorBoard run) unless ``loggers=`` is given. The step is ``trainer.global_step`` (optimizer steps so far).
With two views or more in ``"z"`` the records carry LiDAR (the batch's samples as its surrogate classes) beside
RankMe and α-ReQ (:meth:`Monitor.log`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

try:
    from lightning.pytorch import Callback
except ImportError as err:  # pragma: no cover - exercised only without lightning
    raise ImportError("siamlab.interop.lightning needs the `lightning` package: pip install 'siamlab[lightning]'.") from err

from .monitor import Monitor


class SiamlabCallback(Callback):
    """Feeds ``training_step``'s ``z`` / ``p`` / ``loss`` outputs to a :class:`Monitor` (keyword arguments go to it)."""

    def __init__(self, out_dir: Optional[str] = None, every: int = 50, **monitor_kwargs):
        super().__init__()
        self.out_dir, self.every, self.kwargs = out_dir, every, monitor_kwargs
        self.monitor: Optional[Monitor] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self.monitor is None:
            out = self.out_dir or Path(trainer.default_root_dir) / "siamlab"
            kwargs = dict(self.kwargs)
            if trainer.loggers and "loggers" not in kwargs:  # the trainer's loggers carry the scalars (one run)
                kwargs["loggers"] = ("csv",)
            self.monitor = Monitor(out, self.every, **kwargs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.monitor is None or not isinstance(outputs, Mapping) or "z" not in outputs:
            return
        step = trainer.global_step
        epoch = trainer.current_epoch + (batch_idx + 1) / max(1, trainer.num_training_batches)
        vals = self.monitor.log(step, outputs["z"], outputs.get("p"), loss=outputs.get("loss"), epoch=epoch)
        if vals:
            to_trainer_loggers(trainer, step, vals)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self.monitor is not None:
            self.monitor.close("interrupted" if trainer.interrupted else "completed")
            self.monitor = None


def to_trainer_loggers(trainer, step: int, vals: dict, prefix: str = "siamlab/") -> None:
    """``vals``' finite numbers as ``<prefix><name>`` scalars at ``step`` to every logger of the trainer."""
    metrics = {f"{prefix}{k}": float(v) for k, v in vals.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    for logger in trainer.loggers if metrics else ():
        logger.log_metrics(metrics, step=step)
