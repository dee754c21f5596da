"""Cost of the loggers to the training loop: MetricsLog.write with the CSV + TensorBoard (+ W&B offline)
loggers against metrics.jsonl alone, side by side in one process.

    python benchmarks/bench_loggers.py [--records 2000] [--wandb]

The writer only queues records for the logger thread, so the time the loop spends in ``write`` should
not grow with the loggers; the thread's own time (``close`` drains the queue) is printed apart.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from siamlab.engine.loggers import build_loggers
from siamlab.engine.runlog import MetricsLog

DIAG = {f"metric_{i}": 0.5 + i * 1e-3 for i in range(30)}  # a diag record has ~30 scalars


def timed(run_dir: Path, names: list, records: int) -> tuple:
    log = MetricsLog(run_dir / "metrics.jsonl", loggers=build_loggers(names, run_dir))
    t0 = time.perf_counter()
    for step in range(records):
        log.write("train", step, step / 100, loss=1.0 / (step + 1), lr=0.1, views_per_s=900.0)
        if step % 5 == 0:
            log.write("diag", step, step / 100, **DIAG)
    in_loop = time.perf_counter() - t0
    log.close()
    return in_loop, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--wandb", action="store_true", help="also W&B in offline mode")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    arms = [("metrics.jsonl only", []), ("+ csv + tensorboard", ["csv", "tensorboard"])]
    if args.wandb:
        arms.append(("+ csv + tensorboard + wandb", ["csv", "tensorboard", "wandb"]))
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"  # imports and first-file costs out of the comparison
        warm.mkdir()
        timed(warm, ["csv", "tensorboard"], 50)
        base = None
        for label, names in arms:
            d = Path(tmp) / label.replace(" ", "_").replace("+", "p")
            d.mkdir()
            in_loop, total = timed(d, names, args.records)
            base = base or in_loop
            n = args.records + (args.records + 4) // 5
            print(f"{label:<28} in the loop {1e6 * in_loop / n:7.1f} us/record ({in_loop / base:4.2f}x)   "
                  f"until every logger has written {1e6 * total / n:7.1f} us/record")


if __name__ == "__main__":
    main()
