"""One contender of bench_shared.py: a process that builds a main-job Trainer and trains blocks of steps
when asked, so that contenders with different code, environment (OpenMP settings must be set before
torch loads) or thread counts can be interleaved block by block.

    python benchmarks/contender.py '<json spec>'

The spec: ``root`` (the repository whose ``siamlab`` to import: today's code or an older worktree),
``sets`` (config overrides), ``feed`` (``batched``: ``Trainer.train_step``; ``per-sample``: the same step
fed by :class:`siamlab.data.persample.PerSampleViews` in ``workers`` DataLoader processes, started for each
block and stopped after it, as bench_augment.py does). Each stdin line ``{"steps": N}`` trains N steps and
answers one JSON line on stdout: wall seconds, CPU seconds (this process's threads plus, for the
per-sample feed, its DataLoader workers) and the peak resident memory so far.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time


def tree_cpu_seconds(pids) -> float:
    """utime + stime of processes ``pids`` (from /proc; 0 for one that is gone)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def main() -> None:
    spec = json.loads(sys.argv[1])
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the library prints goes to stderr; stdout carries the answers
    sys.path.insert(0, spec["root"])
    import siamlab  # noqa: F401  (before torch: today's siamlab sets OpenMP's wait policy at import)
    import torch

    from siamlab import config
    from siamlab.data.order import epoch_order
    from siamlab.engine.trainer import Trainer

    base = ["engine.progress=false", "eval.random_init=false", "engine.device=cpu",
            f"engine.out={tempfile.mkdtemp(prefix='siamlab-bench-')}"]
    tr = Trainer(config.load(None, base + spec.get("sets", [])))
    state = {"epoch": 0, "pos": 0, "order": epoch_order(len(tr.train_ds), 0, 0)}

    def next_batch():
        if (state["pos"] + 1) * tr.global_batch > len(state["order"]):
            state["epoch"], state["pos"] = state["epoch"] + 1, 0
            state["order"] = epoch_order(len(tr.train_ds), 0, state["epoch"])
        s = state["pos"] * tr.global_batch
        state["pos"] += 1
        return state["order"][s:s + tr.global_batch]

    def batched(steps: int) -> tuple:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            tr.train_step(next_batch())
            tr.step += 1
        return time.perf_counter() - t0, time.process_time() - c0

    def per_sample(steps: int) -> tuple:
        from torch.utils.data import DataLoader

        from siamlab.data.persample import PerSampleViews

        loader = DataLoader(PerSampleViews(tr.train_ds, tr.augment, tr.views), batch_size=tr.local_batch, shuffle=True,
                            drop_last=True, num_workers=spec.get("workers", 2))
        it = iter(loader)

        def one(batch):
            views, idx = batch
            tr.train_on_views(views, idx, idx)
            tr.step += 1

        one(next(it))  # the workers start (untimed)
        pids = [w.pid for w in it._workers]
        c0, k0, t0 = time.process_time(), tree_cpu_seconds(pids), time.perf_counter()
        for _ in range(steps):
            one(next(it))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0 + tree_cpu_seconds(pids) - k0
        del it
        return wall, cpu

    run = per_sample if spec.get("feed") == "per-sample" else batched
    batched(1)  # warm-up: allocator, the step-0 diagnostics
    reply.write(json.dumps({"threads": torch.get_num_threads(), "views_per_step": tr.global_batch * tr.views}) + "\n")
    for line in sys.stdin:
        wall, cpu = run(json.loads(line)["steps"])
        reply.write(json.dumps({"wall": wall, "cpu": cpu,
                                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")


if __name__ == "__main__":
    main()
