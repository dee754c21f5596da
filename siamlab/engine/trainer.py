"""The one training loop every method runs through.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (appended as metrics are made),
``checkpoints/last.pt`` and ``best.pt`` (atomic writes) and ``summary.json``. Resume is exact:
the checkpoint carries model, optimizer, probe, the RNG states and the position inside the epoch,
and the data order of every epoch is a pure function of (seed, epoch).

Under torchrun (docs/distributed.md) the global batch of step s is the same set of samples, in the
same order, as in one process: each rank takes its contiguous part of it (:func:`local_span`); losses
gather what they need, batch norm is global (``model.sync_bn``) and DDP averages gradients, so N
processes compute what one process would. Rank 0 logs and writes checkpoints; a failing rank stops the
others (:class:`~siamlab.engine.dist.PeerFailure`) and the summary says ``failed``.

GPU fast path: the uint8 training set stays on the device when it fits, views are made there (random
parameters drawn on the device) on a side stream that overlaps the previous step's tail, bf16 autocast /
channels_last / torch.compile are options, and the step never synchronizes with the host (checked for
every method by ``tests/test_hostsync.py``): loss, probe and terms stay tensors until a log step (every
``LOG_EVERY`` steps), where they are averaged over ranks and read back at once, and where NaN and stop
requests are checked.
"""
from __future__ import annotations

import copy
import math
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import config as config_mod
from ..errors import ConfigError, SiamlabError
from . import dist
from .optim import build_optimizer
from .runlog import MetricsLog, atomic_save, atomic_write_text, truncate_metrics, write_json
from .schedule import effective_lr, lr_at

CKPT_VERSION = 1
LOG_EVERY = 10  # steps between log records (the only host synchronizations of the loop)
DEVICE_DATA_SHARE = 0.4  # keep the uint8 training set on the GPU when it takes at most this share of free memory


@dataclass
class RunResult:
    run_dir: Path
    summary: dict  # under torchrun: rank 0's, on every rank
    is_main: bool = True  # False on ranks other than 0 (print results once)


def pick_device(name: str) -> torch.device:
    """``auto`` / ``cuda``: GPU LOCAL_RANK when CUDA is available (one GPU per torchrun process)."""
    if name in ("auto", "cuda"):
        if torch.cuda.is_available():
            local, count = dist.local_rank(), torch.cuda.device_count()
            if local >= count:
                raise ConfigError(f"engine.device={name!r}: process LOCAL_RANK={local} has no GPU of its own (this node has "
                                  f"{count}); start at most {count} processes per node (torchrun --nproc_per_node {count}).")
            return torch.device("cuda", local)
        if name == "auto":
            return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"engine.device={name!r} is not available on this machine (no CUDA GPU); use engine.device=cpu or auto.")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"engine.device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and dist.launched_world_size() > 1:
        raise ConfigError(f"engine.device={name!r} puts every torchrun process on one GPU; use engine.device=cuda "
                          "(process LOCAL_RANK takes GPU LOCAL_RANK).")
    return device


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the ``n`` sample indices for ``epoch``; the same for every world size."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def local_span(step_in_epoch: int, global_batch: int, rank: int = 0, world: int = 1) -> tuple:
    """Positions [start, stop) in the epoch order of this rank's part of global batch ``step_in_epoch``.

    The global batch is order[s·B:(s+1)·B]; rank r takes its r-th contiguous block of B/world, so the
    ranks' parts concatenated in rank order are exactly one process's batch (every rank the same size).
    """
    b = global_batch // world
    start = step_in_epoch * global_batch + rank * b
    return start, start + b


def build_run(cfg: config_mod.RunConfig, device: torch.device):
    """Datasets, augmentation and method for a config (no training)."""
    from ..data import load_dataset
    from ..data.augment import build_augment
    from ..methods import build_method
    from ..models import build_encoder

    train_ds = load_dataset(cfg.data, "train")
    test_ds = load_dataset(cfg.data, "test")
    augment = build_augment(cfg.data, train_ds)
    encoder = build_encoder(cfg.model, train_ds.in_shape)
    if cfg.phases:
        from ..methods.phased import build_phased

        method = build_phased(cfg, encoder, cfg.model)
    else:
        method = build_method(cfg.method, encoder, cfg.model)
    method.bind_dataset(len(train_ds))
    return train_ds, test_ds, augment, method.to(device)


def _rng_state(augment, device: torch.device) -> dict:
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


def _set_rng_state(state: dict, augment, device: torch.device) -> None:
    state = _on_cpu(state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    if "augment" in state and hasattr(augment, "load_state_dict"):
        augment.load_state_dict(state["augment"])


class _StopFlag:
    """SIGTERM / SIGINT set a flag; the loop checkpoints at the next step boundary (under torchrun: the
    next log step, where the ranks agree) and exits."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    def abandon(self) -> None:
        """This process is on its way out after a failure: ignore SIGTERM (torchrun sends it to every
        rank once one has exited) so that the one-line report and the summary get written."""
        ignore_sigterm()
        self._old.pop(signal.SIGTERM, None)


def ignore_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def _map_tensors(fn, v):
    """``fn`` applied to every tensor in ``v`` (a tensor, or lists / tuples of them); the rest as it is."""
    if isinstance(v, torch.Tensor):
        return fn(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_map_tensors(fn, x) for x in v)
    return v


def _map_record(fn, out):
    """The Forward record with ``fn`` applied to every tensor it holds."""
    return out.replace(**{k: _map_tensors(fn, getattr(out, k)) for k in ("z", "p", "targets", "h")},
                       extra={k: _map_tensors(fn, v) for k, v in out.extra.items()})


def _float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class LossStep(torch.nn.Module):
    """The method's forward and loss as one module: what DDP wraps and ``torch.compile`` compiles.

    Returns (loss, terms, record): the record of the forward with every tensor detached, so that DDP's
    search for unused parameters (``unused_parameters = True`` on a method) starts from the loss alone
    and not from record tensors the loss ignores (e.g. the alternating Symmetric Predictor's extras).

    Under bf16 autocast (``engine.bf16``) the networks run in bfloat16 but the loss is computed in
    float32 from float32 copies of the record: whitening, Sinkhorn iterations, cross-correlation and
    covariance terms are batch statistics that bfloat16's 8-bit mantissa would blur.
    """

    def __init__(self, method):
        super().__init__()
        self.method = method
        self.unused_parameters = bool(getattr(method, "unused_parameters", False))

    def forward(self, views: list, index: Optional[torch.Tensor] = None) -> tuple:
        out = _map_record(_float32, self.method(views, index))
        with torch.autocast(views[0].device.type, enabled=False):
            lo = self.method.total_loss(out)
        detach = torch.Tensor.detach
        return lo.loss, {k: _map_tensors(detach, v) for k, v in lo.terms.items()}, _map_record(detach, out)


def _fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_SHARE * free


class Trainer:
    def __init__(self, cfg: config_mod.RunConfig, run_dir: Optional[Path] = None, resume: bool = False):
        self.cfg = cfg
        e = cfg.engine
        if e.threads:
            torch.set_num_threads(e.threads)
        self.device = pick_device(e.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_from_env(self.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self._check_options()
        seed_everything(e.seed)  # the same initial weights on every rank (and as in one process)
        self.train_ds, self.test_ds, self.augment, self.method = build_run(cfg, self.device)
        self.probe = self._build_probe()
        if self.world > 1:
            seed_everything(e.seed + self.rank)  # different augmentations on every rank
        if e.channels_last and self.train_ds.kind == "image":
            self.method = self.method.to(memory_format=torch.channels_last)
        self.model = LossStep(self.method)
        if dist.is_dist():
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
        self.random_init: dict = {}
        self.history_tail: list = []
        self.run_dir = Path(run_dir) if run_dir else self._new_run_dir()
        self.ckpt_dir = self.run_dir / "checkpoints"
        if dist.is_main():
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load(self.ckpt_dir / "last.pt")
        elif dist.is_main():
            atomic_write_text(self.run_dir / "config.yaml", config_mod.dump(cfg))
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", enabled=dist.is_main())
        from ..analysis.live import LiveDiagnostics

        self.diag = LiveDiagnostics(self.method, cfg.diag.every_steps, gradients=cfg.diag.gradients)

    # --- setup ----------------------------------------------------------------------------------
    def _check_options(self) -> None:
        e = self.cfg.engine
        if e.compile and not hasattr(torch, "compile"):
            raise ConfigError("engine.compile=true needs torch.compile (PyTorch >= 2.0); set engine.compile=false.")
        if e.bf16 and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"engine.bf16=true but GPU {torch.cuda.get_device_name(self.device)!r} has no bfloat16; "
                              "set engine.bf16=false.")

    def _build_probe(self):
        """The online probe (same initial weights on every rank; it then sees the global batch)."""
        from ..eval.linear import OnlineProbe

        if not self.cfg.eval.online_probe:
            return None
        feat_dim = self.method.encoder.backbone.out_dim
        return OnlineProbe(feat_dim, self.train_ds.num_classes, self.cfg.eval.probe_lr).to(self.device)

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
        """The training set on the device when ``data.on_device`` and it fits; else in host memory."""
        x, y = self.train_ds.x, self.train_ds.y
        on = self.cfg.data.on_device and _fits_on_device(x.nbytes + y.nbytes, self.device)
        if self.cfg.data.on_device and not on and dist.is_main():
            print(f"siamlab: the training set ({x.nbytes / 2**30:.1f} GiB) takes more than {DEVICE_DATA_SHARE:.0%} of the "
                  "free GPU memory, so it stays in host memory (set data.on_device=false to silence this).", file=sys.stderr)
        self.x_train = x.to(self.device) if on else x
        self.y_train = y.to(self.device) if on else y

    # --- run directory and checkpoints ----------------------------------------------------------
    def _new_run_dir(self) -> Path:
        name = self.cfg.engine.run_name or f"{self.cfg.method.name}-{self.cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(self.cfg.engine.out) / name
        if dist.is_dist():  # every rank must agree on the directory
            path = Path(dist.broadcast_object(str(path)))
        return path

    def _state(self, rng_ranks: list) -> dict:
        return {
            "version": CKPT_VERSION,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "probe": self.probe.state_dict() if self.probe is not None else None,
            "probe_optimizer": self.probe.optimizer.state_dict() if self.probe is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "best_knn": self.best_knn,
            "random_init": self.random_init,
            "rng": rng_ranks[0],
            "rng_ranks": rng_ranks,
            "world_size": self.world,
            "config": self.cfg.to_dict(),
        }

    def save(self, name: str = "last.pt") -> None:
        """Rank 0 writes the checkpoint (every rank calls this: the RNG states of all ranks are gathered)."""
        rng_ranks = dist.gather_objects(_rng_state(self.augment, self.device))
        if dist.is_main():
            atomic_save(self._state(rng_ranks), self.ckpt_dir / name)

    def _load(self, path: Path) -> None:
        if not path.exists():
            raise SiamlabError(f"cannot resume: no checkpoint at {path}; start the run without --resume.")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # corrupt or foreign file
            raise SiamlabError(f"cannot resume: {path} is not a readable siamlab checkpoint ({type(err).__name__}).") from None
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.probe is not None and state.get("probe") is not None:
            self.probe.load_state_dict(state["probe"])
            self.probe.optimizer.load_state_dict(state["probe_optimizer"])
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        self.best_knn, self.random_init = state["best_knn"], state["random_init"]
        rngs = state.get("rng_ranks") or [state["rng"]]
        if self.rank < len(rngs):
            _set_rng_state(rngs[self.rank], self.augment, self.device)
        else:  # more processes than the run that wrote the checkpoint: a fresh, distinct stream
            seed_everything(self.cfg.engine.seed + self.rank + 7919 * self.step)
        if dist.is_main():
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, method=None) -> dict:
        """kNN / NCM / bound on clean features. Under torchrun the feature extraction is split over the
        ranks (each embeds 1/world of each split, SPEC §6); every rank then computes the metrics on the
        gathered features and rank 0's numbers are used by all (bit-identical best-checkpoint choices)."""
        from ..eval.evaluate import evaluate

        m = method if method is not None else self.method
        feats = {}
        res = evaluate(m, self.train_ds, self.test_ds, self.augment, self.cfg.eval, batch_size=512, on_features=feats.update)
        # Representation metrics on clean test features (‖Σ − I‖², effective rank, m_o/m_r ...);
        # evaluation's own keys win where both define one (l_cor, l_bound).
        rep = self.diag.representation_metrics(feats, self.test_ds.y, self.test_ds.num_classes)
        return dist.broadcast_object({**rep, **res})

    def _evaluate_random_init(self) -> dict:
        # The same evaluation on the untrained network (built with the same seed → same init).
        return self.evaluate(self.method)

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

    def _make_views(self, idx: torch.Tensor, idx_dev: torch.Tensor) -> list:
        views = self.augment.views(self._rows(self.x_train, idx, idx_dev), idx_dev, self.views)
        if self.cfg.engine.channels_last and views[0].ndim == 4:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def _views(self, idx: torch.Tensor, idx_dev: torch.Tensor) -> list:
        """The augmented views; on CUDA made on a side stream that the training stream then waits for."""
        if self.aug_stream is None:
            return self._make_views(idx, idx_dev)
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.aug_stream):
            views = self._make_views(idx, idx_dev)
        main.wait_stream(self.aug_stream)
        for v in views:
            v.record_stream(main)
        return views

    def train_step(self, idx: torch.Tensor, idx_dev: Optional[torch.Tensor] = None) -> dict:
        """One optimizer step on this rank's part ``idx`` (CPU sample indices; ``idx_dev``: the same on the
        device). Returns the step's record with tensors, not numbers: it never waits for the device."""
        idx = idx.cpu()
        if idx_dev is None:
            idx_dev = idx.to(self.device)
        return self.train_on_views(self._views(idx, idx_dev), idx, idx_dev)

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
            rec.update(self._probe_step(out.h[0], idx, idx_dev))
        if self.diag.should_log(self.step):
            rec["_diag"] = self.diag(out, self.step)
        return rec

    def _probe_step(self, h: torch.Tensor, idx: torch.Tensor, idx_dev: torch.Tensor) -> dict:
        """One online-probe step on the global batch's detached features (identical on every rank)."""
        feats = dist.gather_nograd(h.detach().float())
        labels = dist.gather_nograd(self._rows(self.y_train, idx, idx_dev))
        p = self.probe.step(feats, labels)
        return {"probe_loss": p["loss"], "probe_acc": p["acc"]}

    def _read_record(self, rec: dict, stop: bool) -> tuple:
        """The record's tensors averaged over ranks and read back in one transfer, and whether any rank
        asked to stop. Called at log steps only (every rank at the same steps)."""
        keys = [k for k, v in rec.items() if isinstance(v, torch.Tensor)]
        ref = rec["loss"]
        parts = [rec[k].detach().to(ref.device, torch.float32).reshape(()) for k in keys]
        vec = torch.stack(parts + [torch.tensor(float(stop), device=ref.device)])
        if dist.is_dist():
            vec = dist.all_reduce_mean(vec)
        numbers = vec.tolist()
        return {**rec, **dict(zip(keys, numbers))}, numbers[-1] > 0

    # --- the loop -------------------------------------------------------------------------------
    def _epoch_order(self) -> tuple:
        order = epoch_order(len(self.train_ds), self.cfg.engine.seed, self.epoch)
        if self.device.type == "cpu":
            return order, order
        if self.aug_stream is None:
            return order, order.to(self.device)
        with torch.cuda.stream(self.aug_stream):
            order_dev = order.to(self.device)
        order_dev.record_stream(torch.cuda.current_stream(self.device))
        return order, order_dev

    def fit(self) -> RunResult:
        t_start = time.time()
        watch = dist.FailureWatch(on_stuck=lambda line: self._write_failed_summary(line, time.time() - t_start)).start()
        with _StopFlag() as stop:
            try:
                status, message = self._train_epochs(stop)
            except Exception as err:
                watch.stop()
                if not dist.is_dist():
                    raise
                stop.abandon()
                raise failure_error(err, self, time.time() - t_start) from err
            finally:
                watch.stop()
        summary = dist.broadcast_object(self._finish(status, message, time.time() - t_start))
        return RunResult(self.run_dir, summary, is_main=dist.is_main())

    def _train_epochs(self, stop: _StopFlag) -> tuple:
        if not self.random_init and self.cfg.eval.random_init:
            self.random_init = self._evaluate_random_init()
            self.log.write("eval", 0, 0, random_init=True, **self.random_init)
        while self.epoch < self.cfg.optim.epochs:
            self.method.on_epoch_start(self.epoch)
            status, message = self._run_epoch(stop)
            if status != "completed":
                return status, message
            self.epoch += 1
            self.step_in_epoch = 0
            if not self._end_of_epoch():
                return "diverged", f"the network's features became non-finite by the end of epoch {self.epoch}"
        return "completed", ""

    def _run_epoch(self, stop: _StopFlag) -> tuple:
        """The remaining steps of this epoch; ("completed", "") or why it stopped early."""
        order, order_dev = self._epoch_order()
        bar = self._progress()
        t0, seen = time.time(), 0
        try:
            while self.step_in_epoch < self.steps_per_epoch:
                a, b = local_span(self.step_in_epoch, self.global_batch, self.rank, self.world)
                rec = self.train_step(order[a:b], order_dev[a:b])
                self.step += 1
                self.step_in_epoch += 1
                seen += self.global_batch * self.views
                diag = rec.pop("_diag", None)
                stop_now = stop.signal is not None and not dist.is_dist()  # under torchrun: agreed at log steps
                if diag is not None or self.step_in_epoch == self.steps_per_epoch or self.step % LOG_EVERY == 0:
                    rec, stop_any = self._read_record(rec, stop.signal is not None)
                    self._log_train(rec, diag, seen / max(1e-9, time.time() - t0), bar)
                    if not math.isfinite(rec["loss"]):
                        return "diverged", f"loss became {rec['loss']} at step {self.step}"
                    stop_now = stop_now or stop_any
                if bar is not None:
                    bar.update(1)
                if stop_now:
                    self.save("last.pt")
                    return "interrupted", self._stop_message(stop.signal)
        finally:
            if bar is not None:
                bar.close()
        return "completed", ""

    def _log_train(self, rec: dict, diag: Optional[dict], rate: float, bar) -> None:
        ep = self.epoch + self.step_in_epoch / self.steps_per_epoch
        self.log.write("train", self.step, ep, views_per_s=rate, **rec)
        if diag:
            self.log.write("diag", self.step, ep, **diag)
        if bar is not None:
            bar.set_postfix(loss=f"{rec['loss']:.4f}", views_s=f"{rate:.0f}")

    def _stop_message(self, signum: Optional[int]) -> str:
        if signum is None:
            return f"stopped by a signal to another process at step {self.step}"
        return f"stopped by signal {signal.Signals(signum).name} at step {self.step}"

    def _progress(self):
        if not (self.cfg.engine.progress and dist.is_main()):
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.steps_per_epoch,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}/{self.cfg.optim.epochs}",
            leave=False,
            dynamic_ncols=True,
        )

    def _end_of_epoch(self) -> bool:
        """Evaluate and checkpoint as configured; False when the weights have diverged (kept out of checkpoints)."""
        ev = self.cfg.eval
        last = self.epoch == self.cfg.optim.epochs
        if (ev.every_epochs and self.epoch % ev.every_epochs == 0) or last:
            res = self.evaluate()
            self.log.write("eval", self.step, self.epoch, **res)
            if any(k.startswith("nonfinite_") for k in res):
                return False
            if dist.is_main():
                self.diag.snapshot(self.run_dir / "snapshots" / f"epoch_{self.epoch:04d}.npz")
            knn = res.get("knn_backbone", -1.0)
            if knn > self.best_knn:
                self.best_knn = knn
                self.save("best.pt")
        if self.epoch % self.cfg.engine.checkpoint_every_epochs == 0 or last:
            self.save("last.pt")
        return True

    def _finish(self, status: str, message: str, seconds: float) -> dict:
        from ..analysis.verdict import verdicts
        from .runlog import read_metrics

        self.log.close()
        history = read_metrics(self.run_dir / "metrics.jsonl") if dist.is_main() else []
        evals = [r for r in history if r.get("kind") == "eval" and not r.get("random_init")]
        final = {k: v for k, v in (evals[-1] if evals else {}).items() if k not in ("kind", "step", "epoch")}
        summary = {
            "status": status,
            "message": message,
            "method": self.cfg.method.name,
            "dataset": self.cfg.data.name,
            "epochs_done": self.epoch,
            "steps": self.step,
            "seconds": round(seconds, 1),
            "final": final,
            "random_init": self.random_init,
            "verdict": verdicts(history, status),
            "run_dir": str(self.run_dir),
            "world_size": self.world,
        }
        if dist.is_main():
            write_json(self.run_dir / "summary.json", summary)
        return summary

    # --- failures under torchrun ----------------------------------------------------------------
    def _write_failed_summary(self, message: str, seconds: float) -> None:
        if dist.is_main():
            self._finish("failed", message, seconds)

    def write_traceback(self, err: BaseException) -> Optional[Path]:
        """The full traceback of this rank's failure in RUN/error-rank<R>.txt (the console gets one line)."""
        path = self.run_dir / f"error-rank{self.rank}.txt"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(traceback.format_exception(type(err), err, err.__traceback__)))
        except OSError:
            return None
        return path


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    return (line[:300] + "...") if len(line) > 300 else line.rstrip(".")


def failure_error(err: BaseException, trainer: Optional[Trainer], seconds: float = 0.0) -> SiamlabError:
    """The one-sentence error a rank raises when a torchrun run fails; rank 0 also writes the failed summary.

    If another rank announced a failure (polled for a few seconds when ``err`` is a broken collective),
    this rank stopped because of it: :class:`~siamlab.engine.dist.PeerFailure` naming that rank; a
    broken collective with no announcement (a peer died or hung past the timeout) is a PeerFailure
    too. Otherwise this rank is the one that failed: it announces it, keeps the traceback in the run
    directory and raises :class:`~siamlab.engine.dist.RankFailure`.
    """
    ignore_sigterm()
    if isinstance(err, (dist.RankFailure, dist.PeerFailure)):
        return err
    me = f"rank {dist.rank()} of {dist.world_size()}"
    comm = dist.is_communication_error(err)
    peer = dist.peer_failure(wait_s=5.0 if comm else 0.0)
    if peer is not None:
        exc: SiamlabError = dist.PeerFailure(f"{me} stopped because {peer}.")
        cause = peer
    elif comm:
        cause = f"rank {dist.rank()} lost contact with the other processes ({type(err).__name__}: {_first_line(err)})"
        dist.announce_failure(cause)
        exc = dist.PeerFailure(f"{me} stopped: it lost contact with the other processes ({_first_line(err)}).")
    else:
        step = f" at step {trainer.step}" if trainer is not None else ""
        what = _first_line(err) if isinstance(err, SiamlabError) else f"{type(err).__name__}: {_first_line(err)}"
        cause = f"rank {dist.rank()} failed{step} ({what})"
        dist.announce_failure(cause)
        tb = trainer.write_traceback(err) if trainer is not None else None
        exc = dist.RankFailure(f"{me} failed{step}: {what}; the other ranks were told to stop"
                               + (f" (traceback in {tb})" if tb else "") + ".")
    if trainer is not None and dist.is_main():
        trainer._finish("failed", cause, seconds)
    return exc


def train(cfg: config_mod.RunConfig, run_dir: Optional[str] = None, resume: bool = False) -> RunResult:
    """Train ``cfg`` (or resume the run in ``run_dir``) and return the run directory and summary.

    Under torchrun a failure on any rank makes every rank raise a one-sentence SiamlabError
    (RankFailure on the rank that failed, PeerFailure on the others) and the summary says ``failed``.
    """
    failed = False
    try:
        trainer = Trainer(cfg, Path(run_dir) if run_dir else None, resume=resume)
    except Exception as err:
        failed = dist.is_dist()
        if failed:
            raise failure_error(err, None) from err
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
        dist.shutdown(failed=failed)
    return result


def load_run_config(run_dir: str) -> config_mod.RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise SiamlabError(f"{run_dir!r} is not a siamlab run directory (no config.yaml); pass the folder printed by `siamlab train`.")
    return config_mod.load(str(path))


def random_init_copy(method):
    """A fresh copy of ``method`` with re-initialized weights (used when evaluating a loaded run)."""
    m = copy.deepcopy(method)
    for mod in m.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    return m
