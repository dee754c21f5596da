"""Training throughput of every method on the default CPU setting (views/s, one process).

For each registered method: a Trainer on the defaults of siamlab/config.py (Fashion-MNIST, the small
convnet, online probe on) with ``method.name`` set, one untimed warm-up step, then
``--steps`` timed steps, all between two diagnostics steps (those cost ~1 step in diag.every_steps;
see bench_diagnostics.py). A method whose defaults do not fit this setting runs with its paper's
setting (``FITS``, printed on its row); one that still does not fit is listed with its one-sentence
refusal. Datasets are loaded once and shared.

    python benchmarks/bench_methods.py --threads 1            # every method, ~2 minutes on an idle 2-core machine
    python benchmarks/bench_methods.py --quick --threads 1    # 4 representative methods, ~30 s
    python benchmarks/bench_methods.py --methods simsiam,byol --set data.name=synthetic
"""
from __future__ import annotations

import argparse
import functools

from common import Batches, add_common_args, build_trainer, header, set_threads, time_train_steps, views_per_s

import siamlab.data
from siamlab.errors import SiamlabError
from siamlab.methods import available

QUICK = ["simsiam", "byol", "simclr", "barlow"]
# W-MSE whitens sub-batches of 128, which must exceed the embedding dimension: its paper's 64-d embedding
FITS = {"wmse": ["model.proj_out=64"]}


def cache_datasets() -> None:
    """Load each (data config, split) once: the Trainer re-reads the dataset for every method otherwise."""
    load = siamlab.data.load_dataset
    memo = {}

    @functools.wraps(load)
    def cached(data_cfg, split):
        key = (repr(data_cfg), split)
        if key not in memo:
            memo[key] = load(data_cfg, split)
        return memo[key]

    siamlab.data.load_dataset = cached


def measure(name: str, args) -> str:
    try:  # a method whose defaults do not fit the setting refuses at build time or at its first step
        tr = build_trainer([f"method.name={name}", *FITS.get(name, []), *args.set], args.device)
        batches = Batches(tr)
        tr.step = 1  # past the step-0 diagnostics (every diag.every_steps steps: amortized, not timed here)
        time_train_steps(tr, batches, 1)
    except SiamlabError as err:
        return f"{name:16s} {'refused':>10s}  {err}"
    seconds = time_train_steps(tr, batches, args.steps)
    rate = views_per_s(tr, args.steps, seconds)
    return f"{name:16s} {rate:10.1f}  {1e3 * seconds / args.steps:9.0f} ms/step  {' '.join(FITS.get(name, []))}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}, one timed step each")
    p.add_argument("--steps", type=int, default=1, help="timed steps per method (after one warm-up step)")
    p.add_argument("--methods", default="", help="comma-separated subset")
    p.add_argument("--device", default="cpu")
    add_common_args(p)
    args = p.parse_args()
    set_threads(args.threads)
    names = args.methods.split(",") if args.methods else (QUICK if args.quick else list(available()))
    if args.quick:
        args.steps = 1
    cache_datasets()
    print(header())
    print(f"default config + {' '.join(args.set) or '(no overrides)'}; {args.steps} timed step(s) per method")
    print(f"{'method':16s} {'views/s':>10s}  {'step':>12s}")
    for name in names:
        print(measure(name, args), flush=True)


if __name__ == "__main__":
    main()
