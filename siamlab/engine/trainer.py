"""The Trainer: a run's parts (data, augmentation, method, optimizer, probe, run directory) and one step.

The engine's files, each one thing:

- :mod:`.build`      device, seeds, datasets + augmentation + method of a config
- :mod:`.trainer`    this file: the Trainer and its training step; :func:`train`, the entry point
- :mod:`.loop`       epochs of steps, log steps, end-of-epoch evaluation, the summary
- :mod:`.step`       the forward + loss module (what DDP wraps / torch.compile compiles), reading records
- :mod:`.checkpoint` checkpoint contents, save / load, RNG states (exact resume)
- :mod:`.signals`    SIGTERM / SIGINT stop requests
- :mod:`.probe`      the online linear probe
- :mod:`.rundir`     the run directory's rules: never reused, one writer (lock), no half-written files
- :mod:`.runlog`     the run directory's files: metrics.jsonl, summary.json, atomic writes
- :mod:`.dist`, :mod:`.failures`  torchrun: process group, DDP, a failing rank's one sentence

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (appended as metrics are made),
``checkpoints/last.pt``, ``best.pt`` and ``best_unsupervised.pt`` (atomic writes) and ``summary.json``.

Under torchrun (docs/distributed.md) the global batch of step s is the same set of samples, in the
same order, as in one process: each rank takes its contiguous part of it
(:func:`~siamlab.data.order.local_span`); losses gather what they need, batch norm is global
(``model.sync_bn``) and DDP averages gradients, so N processes compute what one process would.

GPU fast path: the uint8 training set stays on the device when it fits, views are made there (random
parameters drawn on the device) on a side stream that overlaps the previous step's tail, image networks and
views are channels_last (``engine.channels_last``, on by default: faster convolutions on the CPU too), bf16
autocast / torch.compile are options, and the step never synchronizes with the host (checked for every
method by ``tests/test_hostsync.py``). The CPU thread count is set by every run (:mod:`.threads`).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import collectives
from .. import config as config_mod
from ..errors import ConfigError
from . import checkpoint, dist, loop
from ..data.feed import StreamFeed
from ..data.order import local_span
from .build import DEVICE_DATA_SHARE, build_run, check_config, fits_on_device, pick_device, seed_everything, share_cores
from .failures import failure_error
from .loop import RunResult
from .optim import build_optimizer
from .probe import build_probe, probe_step
from .rundir import claim_run_dir, remove_if_only_lock
from .runlog import MetricsLog, atomic_write_text
from .schedule import effective_lr, lr_at
from .step import LossStep
from .threads import set_threads


class Trainer:
    """A run's parts. Order of construction: every config-only check, then the run directory (locked: a new
    run never reuses one, :mod:`.rundir`), and only then the expensive parts (data, networks). ``overwrite``:
    a new run may replace the run already in its directory (``siamlab train --overwrite``)."""

    def __init__(self, cfg: config_mod.RunConfig, run_dir: Optional[Path] = None, resume: bool = False,
                 overwrite: bool = False):
        self.cfg = cfg
        self.lock = None
        self.check_config()
        e = cfg.engine
        self.thread_line = set_threads(e.threads)
        self.device = pick_device(e.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_from_env(self.device)
        self.rank, self.world = collectives.rank(), collectives.world_size()
        self._check_options()
        self.run_dir, self.lock, created = claim_run_dir(cfg, run_dir, resume, overwrite)
        try:
            self._build(resume)
        except BaseException:
            self.release()
            if not resume and created:
                remove_if_only_lock(self.run_dir)
            raise

    def _build(self, resume: bool) -> None:
        cfg, e = self.cfg, self.cfg.engine
        seed_everything(e.seed)  # the same initial weights on every rank (and as in one process)
        self.train_ds, self.test_ds, self.augment, self.method = self.build_parts()
        self.thread_line = share_cores(self.train_ds, self.device, e.threads) or self.thread_line
        self.threads = torch.get_num_threads()  # in summary.json: another count gives other digits
        if e.progress and collectives.is_main():
            print(self.thread_line, file=sys.stderr, flush=True)
        self.probe = build_probe(cfg, self.method, self.train_ds.num_classes, self.device)
        if self.world > 1:
            seed_everything(e.seed + self.rank)  # different augmentations on every rank
        if e.channels_last and self.train_ds.kind == "image":
            self.method = self.method.to(memory_format=torch.channels_last)
        self.model = LossStep(self.method)
        if collectives.is_dist():
            self.model = dist.wrap_ddp(self.model, cfg, self.device)
        self.loss_step = torch.compile(self.model) if e.compile else self.model
        self.forward = self.method  # the plain forward (no DDP, not compiled), for tools and benchmarks
        self.views = cfg.data.views
        self._set_batch_sizes(cfg.optim.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.optim.epochs
        self.peak_lr = effective_lr(cfg.optim.lr, cfg.optim.batch_size)
        self.optimizer = build_optimizer(self.method.param_groups(), cfg.optim, self.peak_lr)
        self._place_dataset()
        self.aug_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.best_knn = -1.0
        self.best_unsupervised = -math.inf  # the score of checkpoints/best_unsupervised.pt (loop.end_of_epoch)
        self.random_init: dict = {}
        self.ckpt_dir = self.run_dir / "checkpoints"
        if resume:
            checkpoint.load(self, self.ckpt_dir / "last.pt")
        elif collectives.is_main():
            atomic_write_text(self.run_dir / "config.yaml", config_mod.dump(cfg))
        if collectives.is_main():
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", enabled=collectives.is_main(),
                              loggers=self._loggers(resume) if collectives.is_main() else ())
        if not resume and getattr(self.train_ds, "skipped_files", 0):
            self.log.write("event", 0, 0, skipped_files=self.train_ds.skipped_files)  # unreadable, left out
        from ..analysis.live import LiveDiagnostics

        self.diag = LiveDiagnostics(self.method, cfg.diag.every_steps, gradients=cfg.diag.gradients)

    # --- setup ----------------------------------------------------------------------------------
    def check_config(self) -> None:
        """The config-only checks, before anything is loaded or written (:func:`.build.check_config`)."""
        check_config(self.cfg)

    def build_parts(self) -> tuple:
        """(training set, test set or None: no evaluation, augmentation, method on the device) of the config."""
        return build_run(self.cfg, self.device)

    @property
    def reference_set(self):
        """The labelled set evaluation fits on (kNN bank, class means): the training set."""
        return self.train_ds

    def _loggers(self, resume: bool) -> list:
        """CSV / TensorBoard / W&B fed by MetricsLog (siamlab/engine/loggers.py); on resume they drop what
        was logged after the checkpoint's step, as metrics.jsonl does."""
        from .loggers import build_loggers

        e = self.cfg.engine
        return build_loggers(e.loggers, self.run_dir, self.step if resume else None, e.wandb_project, self.cfg.to_dict())

    def _check_options(self) -> None:
        e = self.cfg.engine
        if e.compile and not hasattr(torch, "compile"):
            raise ConfigError("engine.compile=true needs torch.compile (PyTorch >= 2.0); set engine.compile=false.")
        if e.bf16 and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"engine.bf16=true but GPU {torch.cuda.get_device_name(self.device)!r} has no bfloat16; "
                              "set engine.bf16=false.")

    def _set_batch_sizes(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ConfigError(
                f"optim.batch_size={batch_size} is not divisible by the {self.world} processes; choose a multiple of {self.world}."
            )
        self.global_batch = batch_size
        self.local_batch = batch_size // self.world
        self.steps_per_epoch = len(self.train_ds) // batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"optim.batch_size={batch_size} is larger than the {len(self.train_ds)} training samples; lower it."
            )

    def use_training_set(self, dataset) -> None:
        """Train on ``dataset`` instead of the configured training split (benchmarks): steps per epoch and
        device placement are recomputed; the augmentation keeps the normalization it was built with."""
        self.train_ds = dataset
        self.method.bind_dataset(len(dataset))
        self._set_batch_sizes(self.global_batch)
        self.total_steps = self.steps_per_epoch * self.cfg.optim.epochs
        self._place_dataset()

    def _place_dataset(self) -> None:
        """The training set on the device when ``data.on_device`` and it fits; else in host memory. A streamed
        set (README "Data") keeps only its labels here: its images come from :class:`StreamFeed`."""
        ds = self.train_ds
        self.feed = None
        if ds.streamed:
            self.feed = StreamFeed(ds, self.augment.stream_recipes(), self.views, self.cfg.engine.seed, self.device)
            self.x_train, self.y_train = None, ds.y.to(self.device) if self.cfg.data.on_device else ds.y
            return
        x, y = ds.x, ds.y
        on = self.cfg.data.on_device and fits_on_device(x.nbytes + y.nbytes, self.device)
        if self.cfg.data.on_device and not on and collectives.is_main():
            print(f"siamlab: the training set ({x.nbytes / 2**30:.1f} GiB) takes more than {DEVICE_DATA_SHARE:.0%} of the "
                  "free GPU memory, so it stays in host memory (set data.on_device=false to silence this).", file=sys.stderr)
        self.x_train = x.to(self.device) if on else x
        self.y_train = y.to(self.device) if on else y

    def release(self) -> None:
        """Give up the run directory's lock (the loop does it when the run ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def end(self) -> None:
        """The run is over (the loop calls this): free the run directory, and drop the DDP wrapper now, while
        the process group is alive. Its reducer holds the group; freed later, by whatever frees the Trainer
        (the garbage collector, interpreter exit), the group's destructor would wait for gloo's worker
        threads while holding the GIL one of them may need, and hang (seen with 2 gloo processes).
        The unwrapped step still trains in one process."""
        self.release()
        if isinstance(self.model, torch.nn.parallel.DistributedDataParallel):
            self.model = self.model.module
            self.loss_step = torch.compile(self.model) if self.cfg.engine.compile else self.model

    # --- training, checkpoints, evaluation --------------------------------------------------------
    def fit(self) -> RunResult:
        """Run the remaining epochs (:func:`siamlab.engine.loop.fit`) and return the run directory and summary."""
        return loop.fit(self)

    def save(self, name: str = "last.pt") -> None:
        """Write RUN/checkpoints/<name> (rank 0; every rank calls this)."""
        checkpoint.save(self, name)

    def evaluate(self, method=None) -> dict:
        """kNN / NCM / bound, representation and label-free metrics of ``method`` (default: the trained one),
        :func:`siamlab.engine.evaluation.evaluate_network`."""
        from .evaluation import evaluate_network

        return evaluate_network(method if method is not None else self.method, self)

    # --- one step -------------------------------------------------------------------------------
    def _lr(self) -> float:
        o = self.cfg.optim
        warm = int(round(o.warmup_epochs * self.steps_per_epoch))
        return lr_at(self.step, self.total_steps, warm, self.peak_lr, o.schedule)

    def _set_lr(self) -> float:
        lr = self._lr()
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] if (g.get("fixed_lr") or (g.get("name") == "predictor" and self.cfg.optim.fix_predictor_lr)) else lr
        return lr

    def _rows(self, table: torch.Tensor, idx: torch.Tensor, idx_dev: torch.Tensor) -> torch.Tensor:
        """``table[idx]`` on the training device (pinned, non-blocking copy when the table is in host memory)."""
        if table.device == self.device:
            return table[idx_dev]
        rows = table[idx]
        if self.device.type == "cuda":
            return rows.pin_memory().to(self.device, non_blocking=True)
        return rows.to(self.device)

    def batches(self, order: torch.Tensor, order_dev: torch.Tensor):
        """This rank's remaining batches of the epoch (from ``step_in_epoch``), as :meth:`train_step` arguments."""
        if self.feed is not None:
            yield from self.feed.epoch(self.epoch, order, self.step_in_epoch, self.steps_per_epoch, self.global_batch,
                                       self.rank, self.world)
            return
        for s in range(self.step_in_epoch, self.steps_per_epoch):
            a, b = local_span(s, self.global_batch, self.rank, self.world)
            yield order[a:b], order_dev[a:b]

    def _make_views(self, idx: torch.Tensor, idx_dev: torch.Tensor, crops: Optional[torch.Tensor] = None) -> list:
        if crops is not None:
            crops = crops.to(self.device, non_blocking=self.device.type == "cuda")  # pinned by the DataLoader
            views = self.augment.views_of_crops(crops, idx_dev, self.views)
        else:
            views = self.augment.views(self._rows(self.x_train, idx, idx_dev), idx_dev, self.views)
        if self.cfg.engine.channels_last and views[0].ndim == 4:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def _views(self, idx: torch.Tensor, idx_dev: torch.Tensor, crops: Optional[torch.Tensor] = None) -> list:
        """The augmented views; on CUDA made on a side stream that the training stream then waits for."""
        if self.aug_stream is None:
            return self._make_views(idx, idx_dev, crops)
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.aug_stream):
            views = self._make_views(idx, idx_dev, crops)
        main.wait_stream(self.aug_stream)
        for v in views:
            v.record_stream(main)
        return views

    def train_step(self, idx: torch.Tensor, idx_dev: Optional[torch.Tensor] = None,
                   crops: Optional[torch.Tensor] = None) -> dict:
        """One optimizer step on this rank's part ``idx`` (CPU sample indices; ``idx_dev``: the same on the
        device; ``crops``: their images cropped at decode time, for a streamed set). Returns the step's record
        with tensors, not numbers: it never waits for the device."""
        idx = idx.cpu()
        if idx_dev is None:
            idx_dev = idx.to(self.device)
        return self.train_on_views(self._views(idx, idx_dev, crops), idx, idx_dev)

    def train_on_views(self, views: list, idx: torch.Tensor, idx_dev: torch.Tensor) -> dict:
        """The step of :meth:`train_step` on views made elsewhere (e.g. by a DataLoader, for benchmarks)."""
        cfg = self.cfg
        lr = self._set_lr()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.engine.bf16):
            loss, terms, out = self.loss_step(views, idx_dev)
        loss = loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.method.after_step(self.step, self.total_steps)
        rec = {"loss": loss.detach(), "lr": lr, **terms}
        if self.probe is not None and out.h is not None:
            rec.update(probe_step(self.probe, out.h[0], self._rows(self.y_train, idx, idx_dev)))
        if self.diag.should_log(self.step):
            rec["_diag"] = self.diag(out, self.step)
        return rec


def train(cfg: config_mod.RunConfig, run_dir: Optional[str] = None, resume: bool = False,
          overwrite: bool = False, make: Callable = Trainer) -> RunResult:
    """Train ``cfg`` (or resume the run in ``run_dir``) and return the run directory and summary.
    A new run whose directory holds a run is refused unless ``overwrite`` (:mod:`siamlab.engine.rundir`).
    ``make``: the Trainer class (:mod:`.user_run` passes one holding a user's backbone and data).

    Under torchrun a failure on any rank makes every rank raise a one-sentence SiamlabError
    (RankFailure on the rank that failed, PeerFailure on the others) and the summary says ``failed``.
    """
    failed = False
    try:
        trainer = make(cfg, Path(run_dir) if run_dir else None, resume=resume, overwrite=overwrite)
    except Exception as err:
        failed = collectives.is_dist()
        if failed:
            raise failure_error(err) from err
        raise
    finally:
        if failed:
            dist.shutdown(failed=True)
    try:
        result = trainer.fit()
    except Exception:
        failed = True
        raise
    finally:
        trainer.release()
        dist.shutdown(failed=failed)
    return result
