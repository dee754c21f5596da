"""The loop: epochs of steps, log steps, end-of-epoch evaluation and checkpoints, the run's summary.

One pass of :func:`fit` runs the remaining epochs of a :class:`~siamlab.engine.trainer.Trainer` (from
where a resumed checkpoint left off). Every ``LOG_EVERY`` steps (and at diagnostic steps and the end of
an epoch) the step's record is read back: the only host synchronizations of the loop; NaN (status
``diverged``) and stop requests (SIGTERM / SIGINT: checkpoint, status ``interrupted``) are checked
there. A checkpoint, metrics or snapshot write that fails (a full disk) stops the run with status
``write_failed`` and the sentence of :class:`~siamlab.engine.runlog.WriteFailed`; the last good
checkpoint stays (under torchrun the run fails on every rank, the summary naming the write). Another
one-sentence error (an unreadable image under ``data.on_corrupt=stop``) writes the summary with status
``failed`` and is raised again; both sentences end with the way on that works for the run (resume it, or
start it again when it has no checkpoint). Under torchrun every rank runs the same steps; rank 0 logs,
writes checkpoints and the summary.
An evaluation that improves the backbone's kNN writes ``best.pt``; one that improves the label-free metric
``eval.best_unsupervised`` (:func:`siamlab.analysis.labelfree.selection_score`) writes ``best_unsupervised.pt``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import collectives
from ..analysis.labelfree import selection_score
from ..data.order import epoch_order
from ..errors import SiamlabError
from . import dist
from .failures import failure_error
from .rundir import way_on
from .runlog import FREE_SPACE, WriteFailed, atomic_file
from .signals import StopFlag, stop_message
from .step import read_record

LOG_EVERY = 10  # steps between log records (the only host synchronizations of the loop)


@dataclass
class RunResult:
    run_dir: Path
    summary: dict  # under torchrun: rank 0's, on every rank
    is_main: bool = True  # False on ranks other than 0 (print results once)
    signal: Optional[int] = None  # the signal that stopped this process (status "interrupted"), if any


def fit(tr) -> RunResult:
    """Train ``tr`` to the end (or until it stops) and write the summary; see :meth:`Trainer.fit`."""
    t_start = time.time()
    tr.cpu_start = time.process_time()

    def record_failure(line: str) -> None:
        if collectives.is_main():
            finish(tr, "failed", line, time.time() - t_start)

    watch = dist.FailureWatch(on_stuck=record_failure).start()
    try:
        with StopFlag() as stop:
            try:
                status, message = train_epochs(tr, stop)
            except Exception as err:
                watch.stop()
                if dist.is_dist():  # every rank stops; rank 0's summary says failed, naming the cause
                    stop.abandon()
                    raise failure_error(err, tr.step, tr.run_dir, record_failure) from err
                if not isinstance(err, SiamlabError):
                    raise
                status, message = stopped_by(tr, err)
                if status == "failed":  # e.g. an unreadable image under data.on_corrupt=stop
                    finish(tr, status, message, time.time() - t_start)
                    raise type(err)(message) from None
            finally:
                watch.stop()
        summary = collectives.broadcast_object(finish(tr, status, message, time.time() - t_start))
    finally:
        tr.end()  # the run directory is free for the next writer (a resume); DDP let go while the group lives
    return RunResult(tr.run_dir, summary, is_main=collectives.is_main(), signal=stop.signal)


def stopped_by(tr, err: SiamlabError) -> tuple:
    """(status, message) of a run that a one-sentence error stopped in one process: ``write_failed`` for a write
    that failed (a full disk: the last good checkpoint stays), else ``failed``; the sentence ends with the way on
    that works for this run (:func:`siamlab.engine.rundir.way_on`: resume, or start again without a checkpoint)."""
    if isinstance(err, WriteFailed):
        return "write_failed", str(err.with_fix(f"{FREE_SPACE}, then {way_on(tr.run_dir)}"))
    return "failed", f"{str(err).rstrip('.')}; then {way_on(tr.run_dir)}."


def train_epochs(tr, stop: StopFlag) -> tuple:
    """The remaining epochs; (status, message)."""
    if not tr.random_init and tr.cfg.eval.random_init and tr.test_ds is not None:
        tr.random_init = tr.evaluate(tr.method)  # the same evaluation on the untrained network
        tr.log.write("eval", 0, 0, random_init=True, **tr.random_init)
    while tr.epoch < tr.cfg.optim.epochs:
        tr.method.on_epoch_start(tr.epoch)
        status, message = run_epoch(tr, stop)
        if status != "completed":
            return status, message
        tr.epoch += 1
        tr.step_in_epoch = 0
        if not end_of_epoch(tr):
            return "diverged", f"the network's features became non-finite by the end of epoch {tr.epoch}"
    return "completed", ""


def _epoch_order(tr) -> tuple:
    """This epoch's sample order on the CPU and on the device (copied on the augmentation stream)."""
    order = epoch_order(len(tr.train_ds), tr.cfg.engine.seed, tr.epoch)
    if tr.device.type == "cpu":
        return order, order
    if tr.aug_stream is None:
        return order, order.to(tr.device)
    with torch.cuda.stream(tr.aug_stream):
        order_dev = order.to(tr.device)
    order_dev.record_stream(torch.cuda.current_stream(tr.device))
    return order, order_dev


def run_epoch(tr, stop: StopFlag) -> tuple:
    """The remaining steps of this epoch; ("completed", "") or why it stopped early."""
    order, order_dev = _epoch_order(tr)
    batches = tr.batches(order, order_dev)
    bar = _progress(tr)
    t0, seen = time.time(), 0
    try:
        while tr.step_in_epoch < tr.steps_per_epoch:
            rec = tr.train_step(*next(batches))
            tr.step += 1
            tr.step_in_epoch += 1
            seen += tr.global_batch * tr.views
            diag = rec.pop("_diag", None)
            stop_now = stop.signal is not None and not dist.is_dist()  # under torchrun: agreed at log steps
            if diag is not None or tr.step_in_epoch == tr.steps_per_epoch or tr.step % LOG_EVERY == 0:
                if tr.feed is not None:  # unreadable files replaced since the last record, summed over ranks
                    rec["skipped_files"] = torch.tensor(float(tr.feed.take_skipped() * tr.world))  # (read_record averages)
                rec, stop_any = read_record(rec, stop.signal is not None)
                _log_train(tr, rec, diag, seen / max(1e-9, time.time() - t0), bar)
                if not math.isfinite(rec["loss"]):
                    return "diverged", f"loss became {rec['loss']} at step {tr.step}"
                stop_now = stop_now or stop_any
            if bar is not None:
                bar.update(1)
            if stop_now:
                tr.save("last.pt")
                return "interrupted", stop_message(stop.signal, tr.step)
    finally:
        batches.close()  # a streamed set's DataLoader workers stop here
        if bar is not None:
            bar.close()
    return "completed", ""


def _log_train(tr, rec: dict, diag: Optional[dict], rate: float, bar) -> None:
    ep = tr.epoch + tr.step_in_epoch / tr.steps_per_epoch
    tr.log.write("train", tr.step, ep, views_per_s=rate, **rec)
    if diag:
        tr.log.write("diag", tr.step, ep, **diag)
    if bar is not None:
        bar.set_postfix(loss=f"{rec['loss']:.4f}", views_s=f"{rate:.0f}")


def _progress(tr):
    if not (tr.cfg.engine.progress and collectives.is_main()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=tr.steps_per_epoch, initial=tr.step_in_epoch, desc=f"epoch {tr.epoch + 1}/{tr.cfg.optim.epochs}",
                leave=False, dynamic_ncols=True)


def end_of_epoch(tr) -> bool:
    """Evaluate (when there is a test set) and checkpoint as configured; False when the weights have diverged
    (kept out of checkpoints)."""
    ev = tr.cfg.eval
    last = tr.epoch == tr.cfg.optim.epochs
    if tr.test_ds is not None and ((ev.every_epochs and tr.epoch % ev.every_epochs == 0) or last):
        res = tr.evaluate()
        tr.log.write("eval", tr.step, tr.epoch, **res)
        if any(k.startswith("nonfinite_") for k in res):
            return False
        if collectives.is_main():
            with atomic_file(tr.run_dir / "snapshots" / f"epoch_{tr.epoch:04d}.npz") as f:
                tr.diag.snapshot(f)
        knn = res.get("knn_backbone", -1.0)
        if knn > tr.best_knn:
            tr.best_knn = knn
            tr.save("best.pt")
        score = selection_score(res, ev.best_unsupervised)
        if score is not None and score > tr.best_unsupervised:  # the label-free choice (no labels read)
            tr.best_unsupervised = score
            tr.save("best_unsupervised.pt")
    if tr.epoch % tr.cfg.engine.checkpoint_every_epochs == 0 or last:
        tr.save("last.pt")
    return True


def finish(tr, status: str, message: str, seconds: float) -> dict:
    """Close the metrics log and write ``summary.json`` (rank 0): status, final evaluation, verdicts. ``seconds`` is
    this session's wall time (from :func:`fit`'s start: the random-init evaluation, training and evaluations),
    ``cpu_seconds`` the CPU time of this process over the same span (every thread of it; DataLoader workers of a
    streamed set are other processes, not counted): what a run costs on a shared machine, where wall time also
    counts the other jobs."""
    from ..analysis.verdict import verdicts
    from .runlog import read_metrics, write_json

    tr.log.close()
    history = read_metrics(tr.run_dir / "metrics.jsonl") if collectives.is_main() else []
    evals = [r for r in history if r.get("kind") == "eval" and not r.get("random_init")]
    final = {k: v for k, v in (evals[-1] if evals else {}).items() if k not in ("kind", "step", "epoch")}
    summary = {
        "status": status,
        "message": message,
        "method": tr.cfg.method.name,
        "dataset": tr.cfg.data.name,
        "epochs_done": tr.epoch,
        "steps": tr.step,
        "total_steps": tr.total_steps,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - tr.cpu_start, 1),
        "final": final,
        "random_init": tr.random_init,
        "verdict": verdicts(history, status),
        "run_dir": str(tr.run_dir),
        "world_size": tr.world,
        "threads": tr.threads,
    }
    if collectives.is_main():
        try:
            write_json(tr.run_dir / "summary.json", summary)
        except WriteFailed as err:  # the disk is still full: the caller still gets the summary and the sentence
            summary["message"] = f"{message}; summary.json was not written either ({err})" if message else str(err)
    return summary
