"""Run an experiment: every arm × seed (:mod:`.runs`, :mod:`.pool`), seeds added where they can decide a claim,
then verdicts and outputs.

Layout of the experiment folder (default ``runs/reproduce/<id>-<scale>/``, ``<id>-<scale>-b<B>/`` at budget B):
    runs/<arm>-s<seed>/   one run each (config.yaml, metrics.jsonl, summary.json)
    results.json          everything the report and the README catalogue need
    results.csv, results.md, figures/*.png, report.html

Reuse: a finished run with the same config is reused (or copied from a sibling experiment folder), an interrupted
one resumes from its checkpoint (:mod:`.runs`), so an interrupted ``reproduce`` continues where it stopped.

Seeds: the experiment's default seeds (or ``--seeds N``) first; then, while a counted claim is undecidable and its
rule says more seeds could decide it (``more_seeds_could_decide``), the arms it judges get more seeds — to the
same count for all of them (the statistics pair arms by seed), in steps n → max(n + 1, ⌈1.5·n⌉) (3 → 5 → 8), so
the claims are looked at a few times rather than after every seed — up to the scale's cap (``gates.seed_cap``),
and the claims are judged again. Never at tiny scale (its verdicts mean nothing). results.json records every round.

SIGTERM / SIGINT stop the whole experiment: the current runs checkpoint and stop (workers included), no further run
starts, nothing is deleted, and :class:`ExperimentInterrupted` says how far it got.

Progress: one line per run when it starts and ends ("reused" for a run that was not made again), and one line per
epoch while it trains (read from the run's ``metrics.jsonl`` as the engine appends to it).
"""
from __future__ import annotations

import math
import re
import signal
import time
from pathlib import Path
from typing import Callable, Optional

from .. import config as config_mod
from ..errors import ConfigError, SiamlabError
from ..text import slug
from .measures import RunRecord
from .pool import run_tasks
from .results import Results
from .runs import Done, plan
from .scales import arm_config, budgeted
from .spec import Experiment

THREAD_NOTE = ("Every run trained with one thread (engine.threads = 1) however many ran at once (--jobs): a run's numbers "
               "depend on its thread count, so they are the same for any --jobs.")


class ExperimentInterrupted(SiamlabError):
    """A signal stopped ``reproduce``; finished runs are on disk and a rerun continues."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def default_out(exp_id: str, scale: str, budget: float = 1.0) -> Path:
    return Path("runs") / "reproduce" / (f"{exp_id}-{scale}" + (f"-b{budget:g}" if budget != 1 else ""))


def seed_cap(exp: Experiment, scale: str) -> int:
    """The most seeds an arm gets at ``scale``: :func:`.gates.seed_cap` (none added at tiny scale)."""
    from . import gates

    return 0 if scale == "tiny" else gates.seed_cap(exp, scale)


def next_count(n: int, cap: int) -> int:
    return min(cap, max(n + 1, math.ceil(1.5 * n)))


def seeds_wanted(arms: list, claims: list, have: dict, cap: int) -> tuple:
    """({arm label: seed count}, [claim texts]): the arms to give more seeds, for the counted claims that are
    undecidable and say more seeds could decide them. All arms of a claim grow to the same count."""
    from .outputs import UNDECIDABLE, judged_by

    want, asked = {}, []
    for c in claims:
        if c.get("kind", "claim") != "claim" or c.get("verdict") != UNDECIDABLE or not c.get("more_seeds_could_decide"):
            continue
        mine = [a.label for a in arms if judged_by(a, c.get("arms") or [])]
        if not mine:
            continue
        target = next_count(max(have.get(lab, 0) for lab in mine), cap)
        if all(have.get(lab, 0) >= target for lab in mine):
            continue
        asked.append(c.get("text", ""))
        for lab in mine:
            want[lab] = max(want.get(lab, 0), target)
    return want, asked


def _line(rec: RunRecord, how: str = "") -> str:
    final = rec.summary.get("final") or {}
    knn = final.get("knn_backbone")
    parts = [f"{rec.label} seed {rec.seed}: {how or rec.status}"]
    if how.startswith("reused"):
        parts.append(rec.status)
    verdict = (rec.summary.get("verdict") or {}).get("verdict")
    if verdict:
        parts.append(verdict)
    if isinstance(knn, (int, float)):
        parts.append(f"kNN {knn:.1f}%")
    if rec.message:
        parts.append(rec.message)
    if not how:
        parts.append(f"{rec.seconds:.0f}s")
    return " | ".join(parts)


def check_labels(exp: Experiment, scale: str) -> None:
    """One sentence when two arms' labels would share a run folder (:func:`siamlab.text.slug`)."""
    seen: dict = {}
    for arm in exp.arms_for(scale):
        other = seen.setdefault(slug(arm.label), arm.label)
        if other != arm.label:
            raise ConfigError(f"{exp.id}: the arm labels {other!r} and {arm.label!r} share the run folder "
                              f"runs/{slug(arm.label)}-s<seed> (labels that differ only in spaces, underscores or a "
                              "spelled-out symbol such as τ / tau do); make them differ in letters or digits.")


class _Round:
    """Plans and makes one batch of runs, printing their lines; records land in ``records[(label, seed)]``."""

    def __init__(self, exp, scale, out_dir, avail, overrides, jobs, log, stop, records):
        self.exp, self.scale, self.out_dir, self.avail, self.overrides = exp, scale, out_dir, avail, overrides
        self.jobs, self.log, self.stop, self.records = jobs, log, stop, records
        self.count = 0

    def run(self, wanted: list) -> list:
        total = self.count + len(wanted)
        tasks, made = [], []
        for arm, seed in wanted:
            self.count += 1
            prefix = f"[{self.exp.id} {self.count}/{total}]"
            step = plan(self.exp, arm, self.scale, seed, self.count, self.out_dir, self.avail, self.overrides)
            if isinstance(step, Done):
                self.records[(arm.label, seed)] = step.record
                made.append(step.record)
                self.log(f"{prefix} {_line(step.record, step.how)}")
            else:
                step.prefix = f"{prefix} {arm.label} s{seed}"
                tasks.append((prefix, step))
        prefixes = {t.index: p for p, t in tasks}

        def started(task):
            verb = "resuming" if task.resume else "running"
            self.log(f"{prefixes[task.index]} {verb} {task.label} (seed {task.seed}) ...")

        def finished(task, rec):
            self.records[(task.label, task.seed)] = rec
            made.append(rec)
            self.log(f"{prefixes[task.index]} {_line(rec)}")

        done = run_tasks([t for _, t in tasks], self.jobs, self.log, started, finished, self.stop)
        signum = self.stop.signal or next((_signal_of(r) for r in done.values() if _signal_of(r)), None)
        if signum is not None:
            name = signal.Signals(signum).name
            n = sum(r.ran for r in self.records.values())
            raise ExperimentInterrupted(
                f"{self.exp.id} stopped by {name} after {n}/{total} runs; finished runs are kept in {self.out_dir / 'runs'} "
                f"(an interrupted one resumes from its checkpoint): run the same command again to continue.", signum)
        return made


def thread_counts(exp: Experiment, scale: str, overrides: Optional[list]) -> set:
    """The thread counts the arms' runs train with (``--set`` overrides included)."""
    out = set()
    for arm in exp.arms_for(scale):
        cfg = arm_config(exp, arm, scale, 0)
        if arm.run is not None:
            out.add((cfg.get("engine") or {}).get("threads"))
            continue
        try:
            run = config_mod.from_dict(cfg)
            config_mod.apply_overrides(run, overrides)
            out.add(run.engine.threads)
        except SiamlabError:
            continue
    return out


def _signal_of(rec: RunRecord) -> Optional[int]:
    """The signal that stopped a run (the engine writes "stopped by signal SIGTERM at step N")."""
    if rec.status != "interrupted":
        return None
    m = re.search(r"signal (SIG[A-Z]+)", rec.message or "")
    return int(getattr(signal.Signals, m.group(1), signal.SIGTERM)) if m else int(signal.SIGTERM)


def make_runs(exp: Experiment, scale: str, out_dir: Path, wanted: list, overrides: Optional[list] = None, jobs: int = 1,
              log: Callable[[str], None] = print) -> dict:
    """Plan and make the runs ``wanted`` ([(arm, seed)]) of ``exp`` in ``out_dir`` (reused, resumed, copied or trained:
    :mod:`.runs`; ``jobs`` at once: :mod:`.pool`), printing a line per run; returns {(label, seed): RunRecord}. What
    ``reproduce`` and ``siamlab atlas`` share. Raises :class:`ExperimentInterrupted` when a signal stopped it."""
    from ..engine.signals import StopFlag
    from ..methods import available as available_methods

    records: dict = {}
    with StopFlag() as stop:
        _Round(exp, scale, Path(out_dir), set(available_methods()), overrides, jobs, log, stop, records).run(wanted)
    return records


def run_experiment(exp: Experiment, scale: str = "smoke", seeds: Optional[int] = None, out: Optional[str] = None,
                   log: Callable[[str], None] = print, overrides: Optional[list] = None, jobs: int = 1,
                   budget: float = 1.0, max_seeds: Optional[int] = None) -> Path:
    """Run (or reuse) every arm × seed, add seeds where they can decide a claim, then write results, figures and the
    report. Returns the folder.

    ``overrides``: ``key=value`` strings applied to every run last (e.g. ``data.root=...`` at paper scale).
    ``jobs``: runs made at once (:mod:`.pool`; above 1 a calling script needs ``if __name__ == "__main__":``); every
    number is the same for any value. ``budget``: training steps
    multiplied by it (:func:`.scales.budgeted`). ``max_seeds``: the most seeds an arm gets (default: the scale's
    cap; a value at or below the starting count adds none).
    Raises :class:`ExperimentInterrupted` when a signal stopped it (finished runs stay on disk).
    """
    from ..engine.signals import StopFlag  # SIGTERM / SIGINT between runs set a flag (inside a run the engine's own)
    from ..methods import available as available_methods
    from . import outputs

    exp = budgeted(exp, budget)
    out_dir = Path(out) if out else default_out(exp.id, scale, budget)
    n_seeds = int(seeds or exp.seeds.get(scale, 1))
    cap = seed_cap(exp, scale) if max_seeds is None else int(max_seeds)
    config_mod.apply_overrides(config_mod.RunConfig(), overrides)  # a bad key is a user error: fail before any run
    check_labels(exp, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    arms = exp.arms_for(scale)
    t0, records, rounds = time.time(), {}, []
    wanted = {a.label: n_seeds for a in arms}
    with StopFlag() as stop:
        batch = _Round(exp, scale, out_dir, set(available_methods()), overrides, jobs, log, stop, records)
        while True:
            have = {a.label: sum(1 for (lab, _) in records if lab == a.label) for a in arms}
            made = batch.run([(a, s) for a in arms for s in range(have[a.label], wanted[a.label])])
            results = Results(exp, [records[(a.label, s)] for a in arms for s in range(wanted[a.label])], scale)
            if exp.probe:
                from .probes import run_probe

                run_probe(exp.probe, Results(exp, made, scale), out_dir)
            if scale == "tiny":
                break
            have = {a.label: wanted[a.label] for a in arms}
            want, asked = seeds_wanted(arms, outputs.evaluate_claims(exp, results), have, cap)
            if not want:
                break
            rounds.append({"claims": asked, "seeds": dict(want)})
            log(f"[{exp.id}] {len(asked)} claim(s) undecidable that more seeds could decide: "
                + ", ".join(f"{lab} {have[lab]} → {n} seeds" for lab, n in want.items()))
            wanted.update(want)
    extra = {"budget": budget, "seed_cap": cap, "seeds_by_arm": dict(wanted), "seed_rounds": rounds}
    if thread_counts(exp, scale, overrides) == {1}:
        extra["notes"] = f"{exp.notes.get(scale, '')} {THREAD_NOTE}".strip()
    outputs.write_all(exp, results, scale, n_seeds, out_dir, time.time() - t0, extra)
    return out_dir
