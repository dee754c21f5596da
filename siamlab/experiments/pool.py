"""The runs of an experiment, one after another or in N worker processes (``siamlab reproduce --jobs N``).

Workers are fresh processes (the ``spawn`` start method: no torch state or thread pool copied from the parent),
each making one :class:`~.runs.Task` at a time with :func:`~.runs.execute` and sending back its progress lines
and its record. The parent hands the tasks out in order, prints every line, and returns the records by task index,
so results list the runs as ``--jobs 1`` lists them.

Cores and identical numbers: a run's thread count comes from its config — one thread at tiny and smoke
(:mod:`.scales`) — and never from N, and each run is seeded by its own config, so every number is the same for any
N (``tests/test_jobs.py`` compares every metric of ``--jobs 1`` and ``--jobs 2``). N one-thread workers use N
cores; :func:`default_jobs` takes the usable cores at smoke (at most :data:`MAX_JOBS`). One job at tiny scale, whose
runs take about a second, less than a worker takes to start (it imports torch), and at paper scale, whose runs are for
a GPU and take their thread count from the config (``engine.threads``).

Signals: SIGTERM / SIGINT to the parent stop the handing out of tasks and are passed on to every busy worker, whose
run checkpoints and stops (the engine's handler) and comes back "interrupted" — passed on again every
:data:`RESIGNAL_S` until the worker answers, since a worker still loading its run (before the engine's handler is in
place) would otherwise lose it and train to the end; a run that comes back interrupted
(its worker was signalled alone) stops the experiment too. A worker that dies (killed, out of memory) fails only
its own run — recorded as an error naming the exit code — and a new worker takes its place. Workers leave when the
parent is gone (SIGKILL), after the run they are making.

The workers start with ``spawn``: a script (not the CLI) that calls ``run_experiment(..., jobs=N)`` must do so under
``if __name__ == "__main__":``, as every ``multiprocessing`` program on this start method must.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections import deque
from typing import Callable, Optional

from .measures import RunRecord
from .runs import Task, execute

MAX_JOBS = 8  # each worker holds its own copy of the data and of torch (a few hundred MB at smoke)
POLL_S = 0.2
RESIGNAL_S = 1.0  # a stopping pool signals its busy workers again this often


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_jobs(scale: str) -> int:
    """One run per usable core at smoke (one thread each), at most MAX_JOBS; one at tiny and paper scale."""
    return max(1, min(usable_cores(), MAX_JOBS)) if scale == "smoke" else 1


def _worker(tasks, results, parent: int) -> None:
    """A worker's loop: run tasks until told to stop (None) or until its parent is gone (killed outright: the run
    in progress finishes and stays on disk for the next ``reproduce``). A signal while idle is left to the parent,
    which stops handing out tasks; during a run the engine's own handler takes it."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: None)
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        rec = execute(task, lambda line: results.put(("log", line)))
        results.put(("done", task.index, rec))


def run_tasks(tasks: list, jobs: int, log: Callable[[str], None], started: Callable[[Task], None],
              finished: Callable[[Task, RunRecord], None], stop) -> dict:
    """Make every task (``jobs`` at a time) unless ``stop.signal`` is set or a run comes back interrupted; returns
    {task.index: record} of the runs made. ``started`` / ``finished`` print the arm's lines."""
    if jobs <= 1 or len(tasks) <= 1:
        done = {}
        for task in tasks:
            if stop.signal is not None:
                break
            started(task)
            rec = execute(task, log)
            done[task.index] = rec
            finished(task, rec)
            if rec.status == "interrupted":
                break
        return done
    return _Pool(min(jobs, len(tasks)), log).run(tasks, started, finished, stop)


class _Pool:
    def __init__(self, n: int, log: Callable[[str], None]):
        self.ctx = multiprocessing.get_context("spawn")
        self.results = self.ctx.Queue()
        self.log = log
        self.workers: dict = {}  # id -> [process, task queue, current task or None]
        for wid in range(n):
            self._start(wid)

    def _start(self, wid: int) -> None:
        q = self.ctx.Queue()
        proc = self.ctx.Process(target=_worker, args=(q, self.results, os.getpid()), name=f"siamlab-job-{wid}")
        proc.start()
        self.workers[wid] = [proc, q, None]

    def _busy(self) -> list:
        return [w for w in self.workers.values() if w[2] is not None]

    def _signal_busy(self, signum: int) -> None:
        for proc, _, task in self._busy():
            if proc.is_alive():
                os.kill(proc.pid, signum)

    def run(self, tasks: list, started, finished, stop) -> dict:
        pending, done, stopping, signalled = deque(tasks), {}, None, 0.0
        try:
            while pending or self._busy():
                if stopping is None and stop.signal is not None:
                    stopping = stop.signal
                if stopping is not None and time.monotonic() - signalled >= RESIGNAL_S:
                    self._signal_busy(stopping)
                    signalled = time.monotonic()
                if stopping is None:
                    for w in self.workers.values():
                        if w[2] is None and pending:
                            w[2] = pending.popleft()
                            started(w[2])
                            w[1].put(w[2])
                elif not self._busy():
                    break
                rec = self._collect()
                if rec is None:
                    continue
                task, rec = rec
                done[task.index] = rec
                finished(task, rec)
                if rec.status == "interrupted" and stopping is None:
                    stopping = int(signal.SIGTERM)
            return done
        finally:
            self._close()

    def _collect(self) -> Optional[tuple]:
        """The next finished (task, record), printing progress lines on the way; None when nothing came."""
        try:
            msg = self.results.get(timeout=POLL_S)
        except queue.Empty:
            return self._dead()
        if msg[0] == "log":
            self.log(msg[1])
            return None
        _, index, rec = msg
        for w in self.workers.values():
            if w[2] is not None and w[2].index == index:
                task, w[2] = w[2], None
                return task, rec
        return None

    def _dead(self) -> Optional[tuple]:
        """A busy worker that died: its run is an error, a new worker takes its place."""
        for wid, (proc, _, task) in list(self.workers.items()):
            if task is not None and not proc.is_alive():
                code = proc.exitcode
                why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
                rec = RunRecord(task.label, task.seed, "error", f"its worker process died ({why}); run the same command "
                                "again to make this run", task.run_dir)
                self._start(wid)
                return task, rec
        return None

    def _close(self) -> None:
        for proc, q, _ in self.workers.values():
            if proc.is_alive():
                q.put(None)
        for proc, _, _ in self.workers.values():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
