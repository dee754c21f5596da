"""``siamlab.Monitor``: siamlab's live collapse diagnostics inside any training loop (SPEC §2).

Hand it the embeddings of the views (and the predictor outputs, if any) every step; every ``every``
steps it computes what siamlab's engine logs — by the same code, :class:`siamlab.analysis.live.LiveDiagnostics`
— and appends it to ``metrics.jsonl`` in the engine's format, so ``siamlab analyze DIR`` reads it:

* always: Std, √d·Std, m_o, m_r, ZHANG A.6's covariance term, alignment / uniformity of view 0; the same
  on the predictor output P; the InfoNCE λ entropy with ``temperature``; the label-free ``rankme`` and
  ``alpha_req`` of view 0 and, when ``z`` holds two views or more of every sample, ``lidar`` with the batch's
  samples as its surrogate classes (:func:`siamlab.analysis.labelfree.batch_metrics`; the engine computes
  these at evaluations only, on more samples: pass a held-out batch to :meth:`Monitor.log_features` for
  ``rankme_<name>`` / ``alpha_req_<name>`` of clean features);
* with ``projector=`` (the module ending in a BatchNorm): ‖center‖ before and after its final BN (CENTER Fig. 5);
* with ``predictor=``: cos(bias, center) (ZHANG Table 6) and, for a linear predictor, W_p's symmetry,
  diagonal share and ‖W_pᵀW_p − FFᵀ‖ (BRIDGE Thm 3.1);
* with ``loss_fn`` (the loss as a function ``loss_fn(z, p)`` of the lists of view embeddings): the loss
  and the gradient decomposition of ZHANG §3.2 (G, G_e = o_e + r_e, η*, cos with the de-correlation
  gradient). It is re-run on detached copies, on the anchor's normalized vector as a free vector (ZHANG
  eq. 3), so it must normalize with :func:`siamlab.l2n` (a drop-in for ``F.normalize``); a loss that
  normalizes otherwise (``F.normalize``, lightly's ``NegativeCosineSimilarity``) only shows the part of the
  gradient tangent to the sphere, which is detected and said once (:class:`NormalizationWarning`, an
  ``event`` record, summary.json ``notes``).

At the first diagnostics the Monitor says once which diagnostics it does not log and why
(:class:`AbsentDiagnosticsWarning`, ``Monitor.absent``, summary.json ``absent``): no final BN in the
projector → no center norm at the final BN, no predictor → no predictor diagnostics, and so on
(:mod:`siamlab.interop.monitor_checks`). ``warn=False`` silences the warnings, not the records.

The gradient frame (which tensor is the anchor, which the basic part, and the scale that gives the
basic part coefficient 1) defaults to SimSiam's when predictor outputs are given — anchor P_a, basic P_b,
scale 2·batch, i.e. ``L = −½(P_a·sg(Z_b) + P_b·sg(Z_a))`` averaged over the batch — and to the full
gradient on Z_a (no basic part, scale = batch) otherwise; pass a :class:`siamlab.methods.GradFrame`
(or a function of the :class:`~siamlab.methods.Forward` record returning one) for other losses.

After every diagnostics record the collapse verdict of training runs
(:func:`siamlab.analysis.verdict.verdicts` on the records so far) is re-evaluated; when it turns
(e.g. "not collapsed" → "collapsed") an ``event`` record is logged and a :class:`CollapseWarning` is
issued, once per kind of verdict. ``close()`` (or leaving a ``with`` block) writes ``summary.json``.

Under torch.distributed every rank must call :meth:`Monitor.log` at the same steps (the diagnostics
gather the global batch, as in siamlab's engine); rank 0 writes the files.
"""
from __future__ import annotations

import math
import types
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..analysis.labelfree import batch_metrics
from ..analysis.live import LiveDiagnostics
from ..methods.base import Forward, GradFrame, LossOut


class CollapseWarning(UserWarning):
    """The collapse verdict of a monitored run changed (issued once per verdict)."""


class NormalizationWarning(UserWarning):
    """``loss_fn`` normalizes where the Monitor cannot see it (not with siamlab.l2n): issued once."""


class AbsentDiagnosticsWarning(UserWarning):
    """Which diagnostics a monitored loop does not get, and why: issued once, at the first diagnostics."""


class _PredictorView:
    """A user's predictor seen through the two attributes the diagnostics read: ``last_bias`` (the last
    Linear's bias) and ``linear_weight`` (the product of the Linear weights when the module is only Linear
    layers, i.e. p = W_p z + b); siamlab's own predictors already have them."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.normalize_input = bool(getattr(module, "normalize_input", False))

    def _linears(self) -> list:
        return [m for m in self.module.modules() if isinstance(m, nn.Linear)]

    @property
    def last_bias(self):
        if hasattr(self.module, "last_bias"):
            return self.module.last_bias
        lin = self._linears()
        return lin[-1].bias if lin else None

    @property
    def linear_weight(self):
        if hasattr(self.module, "linear_weight"):
            return self.module.linear_weight
        leaves = [m for m in self.module.modules() if not list(m.children())]
        if not leaves or not all(isinstance(m, (nn.Linear, nn.Identity)) for m in leaves):
            return None
        weight = None
        for lin in self._linears():
            weight = lin.weight if weight is None else lin.weight @ weight
        return weight


class _LoopMethod:
    """The slice of siamlab's method interface that :class:`LiveDiagnostics` reads, for a foreign loop."""

    def __init__(self, loss_fn, frame, predictor, projector, temperature):
        self._loss_fn, self._frame = loss_fn, frame
        self.predictor = None if predictor is None else _PredictorView(predictor)
        self.encoder = types.SimpleNamespace(projector=projector)
        self.params = types.SimpleNamespace(tau=temperature)

    def gradient_frame(self, out: Forward) -> GradFrame:
        if callable(self._frame):
            return self._frame(out)
        if self._frame is not None:
            return self._frame
        m = out.z[0].shape[0]
        if out.p is not None and len(out.p) >= 2:
            return GradFrame(anchor=("p", 0), basic=("p", 1), scale=2.0 * m)
        return GradFrame(anchor=("z", 0), basic=None, scale=float(m))

    def total_loss(self, out: Forward) -> LossOut:
        return LossOut(self._loss_fn(list(out.z), None if out.p is None else list(out.p)))


class Monitor:
    """Live collapse diagnostics for a training loop siamlab does not run (see the module docstring).

    ``out_dir``: folder for ``metrics.jsonl`` / ``summary.json`` (created; an existing metrics file is
    replaced). ``every``: steps between diagnostics. ``name``: what ``siamlab analyze`` calls the method.
    ``loggers``: written beside metrics.jsonl as in siamlab's runs (:mod:`siamlab.engine.loggers`:
    csv, tensorboard — skipped when not installed — and wandb).
    """

    def __init__(self, out_dir, every: int = 50, *, loss_fn: Optional[Callable] = None,
                 frame: Union[GradFrame, Callable, None] = None, predictor: Optional[nn.Module] = None,
                 projector: Optional[nn.Module] = None, temperature: Optional[float] = None,
                 gradients: bool = True, name: str = "monitored loop", warn: bool = True,
                 loggers: Sequence[str] = ("csv", "tensorboard")):
        from ..collectives import is_main
        from ..engine.loggers import build_loggers
        from ..engine.runlog import MetricsLog

        if int(every) < 1:
            raise ValueError(f"Monitor(every={every!r}) is not valid: expected an integer >= 1.")
        self.out_dir = Path(out_dir)
        self.main = is_main()
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for old in ("metrics.jsonl", "metrics.csv"):  # a new monitored run replaces the last one's files
                (self.out_dir / old).unlink(missing_ok=True)
        self.every, self.loss_fn, self.name, self.warn = int(every), loss_fn, name, warn
        self._method = _LoopMethod(loss_fn, frame, predictor, projector, temperature)
        self.diag = LiveDiagnostics(self._method, self.every, gradients=gradients and loss_fn is not None)
        self.log_file = MetricsLog(self.out_dir / "metrics.jsonl", enabled=self.main,
                                   loggers=build_loggers(list(loggers), self.out_dir) if self.main else ())
        self.history: list = []
        self.verdict = "unknown"
        self._warned: set = set()
        self._status = "running"
        self.absent: Optional[dict] = None  # {diagnostics: why not logged}, from the first diagnostics on
        self.notes: list = []  # what the Monitor said about its own numbers (summary.json "notes")
        self._normalization_checked = not self.diag.gradients

    # --- the loop's calls ------------------------------------------------------------------------
    def should_log(self, step: int) -> bool:
        return step % self.every == 0

    def log(self, step: int, z: Sequence[torch.Tensor], p: Optional[Sequence[torch.Tensor]] = None, *,
            loss=None, epoch: float = 0.0) -> Optional[dict]:
        """Diagnostics of this step's view embeddings ``z`` (and predictor outputs ``p``) every ``every`` steps
        (None on the other steps, at no cost). ``loss``: the step's loss value, logged as is; without it
        the loss is ``loss_fn(z, p)`` when a ``loss_fn`` was given."""
        if not self.should_log(step):
            return None
        out = Forward(z=list(z), p=None if p is None else list(p))
        if loss is None and self.loss_fn is not None:
            with torch.no_grad():
                loss = self.loss_fn([t.detach() for t in out.z], None if out.p is None else [t.detach() for t in out.p])
        vals = {**self.diag(out, step), **batch_metrics(out.z)}
        if loss is not None:
            loss = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            self._write("train", step, epoch, loss=loss)
        self._write("diag", step, epoch, **vals)
        self._report_on_itself(out, vals, step, epoch)
        self._check_verdict(step, epoch)
        return vals

    def log_features(self, step: int, features: dict, labels: Optional[torch.Tensor] = None,
                     num_classes: Optional[int] = None, epoch: float = 0.0) -> dict:
        """Metrics of clean (un-augmented) features, e.g. ``{"backbone": h, "projector": z}`` of a held-out
        batch, as an ``eval`` record: ‖Σ − I‖², L_cor / L_bound (with ``num_classes``), effective rank ..."""
        vals = self.diag.representation_metrics(features, labels, num_classes)
        self._write("eval", step, epoch, **vals)
        return vals

    # --- what the Monitor says about its own numbers (siamlab.interop.monitor_checks) ---------------
    def _report_on_itself(self, out: Forward, vals: dict, step: int, epoch: float) -> None:
        """Once: the diagnostics absent and why; whether loss_fn normalizes where the gradient decomposition
        cannot see it (checked until the gradient is non-zero)."""
        from .monitor_checks import absent_diagnostics, absent_text, hidden_normalization_text, tangent_only

        if self.absent is None:
            self.absent = absent_diagnostics(self._method, out, vals, gradients=self.diag.gradients,
                                             temperature=self._method.params.tau)
            if self.absent:
                self._say(absent_text(self.absent), AbsentDiagnosticsWarning)
        if not self._normalization_checked:
            tangent = tangent_only(self._method, out)
            self._normalization_checked = tangent is not None
            if tangent:
                note = hidden_normalization_text(self._method.gradient_frame(out).anchor)
                self.notes.append(note)
                self._write("event", step, epoch, event="hidden normalization", note=note)
                self._say(note, NormalizationWarning)

    def _say(self, text: str, category) -> None:
        if self.warn and self.main:
            warnings.warn(text, category, stacklevel=4)

    # --- records and verdicts --------------------------------------------------------------------
    def _write(self, kind: str, step: int, epoch: float, **vals) -> None:
        self.log_file.write(kind, step, epoch, **vals)
        self.history.append({"kind": kind, "step": int(step), "epoch": epoch,
                             **{k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vals.items()}})

    def _check_verdict(self, step: int, epoch: float) -> None:
        from ..analysis.verdict import explain, verdicts

        v = verdicts(self.history, self._status)
        if v["verdict"] == self.verdict:
            return
        before, self.verdict = self.verdict, v["verdict"]
        if before == "unknown" and v["verdict"] == "not collapsed":
            return
        self._write("event", step, epoch, event="verdict", verdict=v["verdict"], previous=before)
        if self.warn and self.main and v["verdict"] not in self._warned:
            self._warned.add(v["verdict"])
            warnings.warn(f"siamlab.Monitor: the collapse verdict turned from {before!r} to {v['verdict']!r} at step {step}"
                          f" ({explain(v)}; rule: {v['rule']}).", CollapseWarning, stacklevel=3)

    def close(self, status: str = "completed") -> dict:
        """Write ``summary.json`` (status, verdict) and close the files; returns the summary."""
        from ..analysis.verdict import verdicts
        from ..engine.runlog import write_json

        self._status = status
        self.diag.close()
        self.log_file.close()
        summary = {"status": status, "method": self.name, "dataset": "", "verdict": verdicts(self.history, status),
                   "steps": max([r["step"] for r in self.history], default=0), "run_dir": str(self.out_dir),
                   "absent": self.absent or {}, "notes": self.notes}
        if self.main:
            write_json(self.out_dir / "summary.json", summary)
        return summary

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close("completed" if exc_type is None else "interrupted")
