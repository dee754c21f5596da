"""The one training loop every method runs through.

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl`` (appended as metrics are made),
``checkpoints/last.pt`` and ``best.pt`` (atomic writes) and ``summary.json``. Resume is exact:
the checkpoint carries model, optimizer, probe, the RNG states and the position inside the epoch,
and the data order of every epoch is a pure function of (seed, epoch).
"""
from __future__ import annotations

import copy
import math
import os
import signal
import time
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


@dataclass
class RunResult:
    run_dir: Path
    summary: dict


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"engine.device={name!r} is not available on this machine (no CUDA GPU); use engine.device=cpu or auto.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"engine.device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The permutation of sample indices for ``epoch``; each rank takes an interleaved share."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    return perm[rank::world] if world > 1 else perm


def build_run(cfg: config_mod.RunConfig, device: torch.device):
    """Datasets, augmentation and method for a config (no training)."""
    from ..data import load_dataset
    from ..data.augment import build_augment
    from ..methods import build_method
    from ..models import build_encoder

    train_ds = load_dataset(cfg.data, "train")
    test_ds = load_dataset(cfg.data, "test")
    augment = build_augment(cfg.data, train_ds)
    encoder = build_encoder(cfg.model, augment.out_shape)
    if cfg.phases:
        from ..methods.phased import build_phased

        method = build_phased(cfg, encoder, cfg.model)
    else:
        method = build_method(cfg.method, encoder, cfg.model)
    method.bind_dataset(len(train_ds))
    return train_ds, test_ds, augment, method.to(device)


def _rng_state(augment) -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    gen = getattr(augment, "generator", None)
    if isinstance(gen, torch.Generator):
        state["augment"] = gen.get_state()
    return state


def _set_rng_state(state: dict, augment) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen = getattr(augment, "generator", None)
    if "augment" in state and isinstance(gen, torch.Generator):
        gen.set_state(state["augment"])


class _StopFlag:
    """SIGTERM / SIGINT set a flag; the loop checkpoints at the next step boundary and exits."""

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


class Trainer:
    def __init__(self, cfg: config_mod.RunConfig, run_dir: Optional[Path] = None, resume: bool = False):
        self.cfg = cfg
        e = cfg.engine
        if e.threads:
            torch.set_num_threads(e.threads)
        dist.init_from_env()
        self.device = pick_device(e.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if e.bf16 and self.device.type == "cpu":
            pass  # bf16 autocast works on CPU too (slower); allowed for parity tests
        seed_everything(e.seed + dist.rank())
        self.train_ds, self.test_ds, self.augment, self.method = build_run(cfg, self.device)
        if e.channels_last and self.train_ds.kind == "image":
            self.method = self.method.to(memory_format=torch.channels_last)
        self.model = self.method
        if dist.is_dist():
            self.model = dist.wrap_ddp(self.method, cfg, self.device)
        self.forward = torch.compile(self.model) if e.compile else self.model
        self.views = cfg.data.views
        world = dist.world_size()
        if cfg.optim.batch_size % world:
            raise ConfigError(
                f"optim.batch_size={cfg.optim.batch_size} is not divisible by the {world} processes; choose a multiple of {world}."
            )
        self.local_batch = cfg.optim.batch_size // world
        n_local = len(epoch_order(len(self.train_ds), e.seed, 0, dist.rank(), world))
        self.steps_per_epoch = n_local // self.local_batch
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"optim.batch_size={cfg.optim.batch_size} is larger than the {len(self.train_ds)} training samples; lower it."
            )
        self.total_steps = self.steps_per_epoch * cfg.optim.epochs
        self.peak_lr = effective_lr(cfg.optim.lr, cfg.optim.batch_size)
        self.optimizer = build_optimizer(self.method.param_groups(), cfg.optim, self.peak_lr)
        from ..eval.linear import OnlineProbe

        self.probe = None
        if cfg.eval.online_probe:
            feat_dim = self.method.encoder.backbone.out_dim
            self.probe = OnlineProbe(feat_dim, self.train_ds.num_classes, cfg.eval.probe_lr).to(self.device)
        self.x_train = self.train_ds.x.to(self.device) if cfg.data.on_device else self.train_ds.x
        self.y_train = self.train_ds.y.to(self.device) if cfg.data.on_device else self.train_ds.y
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

    # --- run directory and checkpoints ----------------------------------------------------------
    def _new_run_dir(self) -> Path:
        name = self.cfg.engine.run_name or f"{self.cfg.method.name}-{self.cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(self.cfg.engine.out) / name
        if dist.is_dist():  # every rank must agree on the directory
            path = Path(dist.broadcast_object(str(path)))
        return path

    def _state(self) -> dict:
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
            "rng": _rng_state(self.augment),
            "config": self.cfg.to_dict(),
        }

    def save(self, name: str = "last.pt") -> None:
        if dist.is_main():
            atomic_save(self._state(), self.ckpt_dir / name)

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
        _set_rng_state(state["rng"], self.augment)
        if dist.is_main():
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, method=None) -> dict:
        from ..eval.evaluate import evaluate

        m = method if method is not None else self.method
        res = evaluate(m, self.train_ds, self.test_ds, self.augment, self.cfg.eval, batch_size=512)
        return res

    def _evaluate_random_init(self) -> dict:
        # The same evaluation on the untrained network (built with the same seed → same init).
        return self.evaluate(self.method)

    # --- the loop -------------------------------------------------------------------------------
    def _lr(self) -> float:
        o = self.cfg.optim
        warm = int(round(o.warmup_epochs * self.steps_per_epoch))
        return lr_at(self.step, self.total_steps, warm, self.peak_lr, o.schedule)

    def _set_lr(self) -> float:
        lr = self._lr()
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] if (g.get("fixed_lr") or (g.get("name") == "predictor" and self.cfg.optim.fix_predictor_lr)) else lr
        return lr

    def train_step(self, idx: torch.Tensor) -> dict:
        cfg = self.cfg
        x = self.x_train[idx.to(self.x_train.device)].to(self.device, non_blocking=True)
        idx_dev = idx.to(self.device)
        views = self.augment.views(x, idx_dev, self.views)
        if cfg.engine.channels_last and views[0].ndim == 4:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        lr = self._set_lr()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.engine.bf16):
            out = self.forward(views, idx_dev)
            lo = self.method.total_loss(out)
        loss = lo.loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.method.after_step(self.step, self.total_steps)
        rec = {"loss": loss.detach(), "lr": lr, **{k: v for k, v in lo.terms.items()}}
        if self.probe is not None and out.h is not None:
            y = self.y_train[idx.to(self.y_train.device)].to(self.device)
            p = self.probe.step(out.h[0].detach().float(), y)
            rec["probe_loss"], rec["probe_acc"] = p["loss"], p["acc"]
        if self.diag.should_log(self.step):
            rec["_diag"] = self.diag(out, self.step)
        return rec

    def fit(self) -> RunResult:
        cfg = self.cfg
        status = "completed"
        message = ""
        t_start = time.time()
        if not self.random_init and cfg.eval.random_init:
            self.random_init = self._evaluate_random_init()
            self.log.write("eval", 0, 0, random_init=True, **self.random_init)
        last_loss = float("nan")
        with _StopFlag() as stop:
            while self.epoch < cfg.optim.epochs:
                self.method.on_epoch_start(self.epoch)
                order = epoch_order(len(self.train_ds), cfg.engine.seed, self.epoch, dist.rank(), dist.world_size())
                bar = self._progress()
                t0, seen = time.time(), 0
                while self.step_in_epoch < self.steps_per_epoch:
                    s = self.step_in_epoch * self.local_batch
                    rec = self.train_step(order[s:s + self.local_batch])
                    self.step += 1
                    self.step_in_epoch += 1
                    seen += self.local_batch * self.views
                    diag = rec.pop("_diag", None)
                    log_now = diag is not None or self.step_in_epoch == self.steps_per_epoch or self.step % 10 == 0
                    if log_now:
                        last_loss = float(rec["loss"])
                        ep = self.epoch + self.step_in_epoch / self.steps_per_epoch
                        rate = seen * dist.world_size() / max(1e-9, time.time() - t0)
                        self.log.write("train", self.step, ep, views_per_s=rate, **rec)
                        if diag:
                            self.log.write("diag", self.step, ep, **diag)
                        if bar is not None:
                            bar.set_postfix(loss=f"{last_loss:.4f}", views_s=f"{rate:.0f}")
                        if not math.isfinite(last_loss):
                            status, message = "diverged", f"loss became {last_loss} at step {self.step}"
                            break
                    if bar is not None:
                        bar.update(1)
                    if stop.signal is not None:
                        status = "interrupted"
                        message = f"stopped by signal {signal.Signals(stop.signal).name} at step {self.step}"
                        self.save("last.pt")
                        break
                if bar is not None:
                    bar.close()
                if status != "completed":
                    break
                self.epoch += 1
                self.step_in_epoch = 0
                self._end_of_epoch()
        summary = self._finish(status, message, time.time() - t_start)
        return RunResult(self.run_dir, summary)

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

    def _end_of_epoch(self) -> None:
        ev = self.cfg.eval
        last = self.epoch == self.cfg.optim.epochs
        if (ev.every_epochs and self.epoch % ev.every_epochs == 0) or last:
            res = self.evaluate()
            self.log.write("eval", self.step, self.epoch, **res)
            knn = res.get("knn_backbone", -1.0)
            if knn > self.best_knn:
                self.best_knn = knn
                self.save("best.pt")
        if self.epoch % self.cfg.engine.checkpoint_every_epochs == 0 or last:
            self.save("last.pt")

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
        }
        if dist.is_main():
            write_json(self.run_dir / "summary.json", summary)
        return summary


def train(cfg: config_mod.RunConfig, run_dir: Optional[str] = None, resume: bool = False) -> RunResult:
    """Train ``cfg`` (or resume the run in ``run_dir``) and return the run directory and summary."""
    trainer = Trainer(cfg, Path(run_dir) if run_dir else None, resume=resume)
    try:
        return trainer.fit()
    finally:
        dist.cleanup()


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
