"""A run directory has one writer at a time, is never silently reused, and holds no half-written files.

Rules (README "Train", issue 14):

* **New runs never reuse a directory.** A new run whose directory already holds a run (``config.yaml``,
  ``metrics.jsonl``, ``summary.json`` or ``checkpoints/``) is refused with one sentence naming the ways out
  that work for that run (:func:`refuse_existing`): resume it (``siamlab train --resume RUN``) when it has a
  checkpoint and has not finished, pick another ``engine.run_name``, or pass ``--overwrite`` to replace it.
  An automatic name (``<method>-<dataset>-<timestamp>``) that is taken gets a ``-2``, ``-3`` ... suffix.
  :class:`siamlab.Monitor` follows the same rules with its own words (:data:`MONITOR`: ``resume=True``,
  ``overwrite=True``); a monitored run has no checkpoint, so it can always be continued.
* **No dead ends.** A run that stopped before its first checkpoint (killed, a full disk, an unreadable
  image) cannot be resumed; every message about it — the refusal of a new run, of ``--resume``, the
  ``write_failed`` summary — names what works instead (:func:`way_on`, :func:`restart_command`).
* **One writer.** Training, resuming and a Monitor hold ``RUN/.lock`` for their whole life
  (:class:`~siamlab.engine.runlock.RunLock`: a ``flock`` the kernel drops when the process ends, however it ends).
* **No half-written files.** Every write is atomic (a temporary file ``.<name>.<random>.siamlab-tmp``
  in the same folder, then ``os.replace``) except appending to ``metrics.jsonl`` and ``metrics.csv`` and
  the lock record (the list is in :mod:`siamlab.engine.runlog`). A failing write removes its temporary
  file at once; temporary files left by a killed process are removed when the run next starts or resumes,
  once the lock is held (so a live writer's file is never touched).
"""
from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import collectives
from ..errors import SiamlabError
from .runlock import LOCK_NAME, RunDirError, RunLock
from .runlog import TEMP_SUFFIX

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints")  # any of these: the folder holds a run
# What --overwrite removes (with error-rank*.txt), nothing else: the run's files, its loggers' (siamlab.engine.loggers:
# left behind, metrics.csv would be appended to and tensorboard/ would mix two runs), and what `siamlab analyze` and
# `siamlab export` wrote from the old run.
RUN_OUTPUTS = RUN_MARKERS + ("snapshots", "metrics.csv", "tensorboard", "wandb_id.txt", "wandb", "analysis", "export")


def holds_run(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in RUN_MARKERS)


def free_name(run_dir: Path) -> Path:
    """``run_dir``, or the first of ``run_dir-2``, ``run_dir-3`` ... that holds no run (automatic names)."""
    path, k = Path(run_dir), 1
    while holds_run(path):
        k += 1
        path = Path(f"{run_dir}-{k}")
    return path


FINISHED = ("completed", "diverged")  # statuses a resume cannot take further


@dataclass(frozen=True)
class Owner:
    """Who writes run directories, for the words of its messages: ``resume`` / ``overwrite`` / ``elsewhere`` are
    how that writer continues a run, replaces it, or goes elsewhere; ``checkpoints``: whether continuing needs
    ``checkpoints/last.pt`` (a training run) or not (a monitored loop keeps only its metrics)."""

    what: str
    resume: str
    overwrite: str
    elsewhere: str
    checkpoints: bool = True


TRAINING = Owner("run directory", "`siamlab train --resume {run}`", "pass --overwrite", "choose another engine.run_name")
MONITOR = Owner("Monitor folder", "Monitor({run!r}, resume=True)", "pass overwrite=True", "choose another folder",
                checkpoints=False)


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / "checkpoints" / "last.pt").is_file()


def _status(run_dir: Path) -> Optional[str]:
    try:
        status = json.loads((Path(run_dir) / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None


def restart_command(run_dir: Path) -> str:
    """The command that starts the run in ``run_dir`` again from step 0, in the same folder, with its own config."""
    run_dir = Path(run_dir)
    q = shlex.quote
    return (f"siamlab train {q(str(run_dir / 'config.yaml'))} --set engine.out={q(str(run_dir.parent))} "
            f"--set engine.run_name={q(run_dir.name)} --overwrite")


def way_on(run_dir: Path, owner: Owner = TRAINING) -> str:
    """How to go on with the run in ``run_dir`` after it stopped (a full disk, an unreadable image): continue it
    where a checkpoint allows, else start it again (or, if it left nothing, run the command again)."""
    run = str(run_dir)
    if not owner.checkpoints:
        return f"continue the run with {owner.resume.format(run=run)}"
    if has_checkpoint(run_dir):
        return f"{owner.resume.format(run=run)} continues the run from its last good checkpoint"
    if holds_run(run_dir):
        return f"start the run again with `{restart_command(run_dir)}` (it stopped before its first checkpoint)"
    return "run the command again"


def refuse_existing(run_dir: Path, owner: Owner = TRAINING) -> RunDirError:
    """The refusal of a new run in a folder that holds one, naming the ways out that work for that run."""
    where = f"{owner.what} {str(run_dir)!r} already holds a run"
    other, replace = owner.elsewhere, f"{owner.overwrite} to replace it"
    if not owner.checkpoints:
        return RunDirError(f"{where}; continue it with {owner.resume.format(run=str(run_dir))}, {replace}, or {other}.")
    status = _status(run_dir)
    if status in FINISHED:
        return RunDirError(f"{where} that has finished (status {status}); {other}, or {replace}.")
    if not has_checkpoint(run_dir):
        return RunDirError(f"{where} that stopped before its first checkpoint, so it cannot be continued; "
                           f"{owner.overwrite} to start it again, or {other}.")
    return RunDirError(f"{where}; continue it with {owner.resume.format(run=str(run_dir))}, {other}, or {replace}.")


def refuse_resume(run_dir: Path, owner: Owner = TRAINING) -> Optional[RunDirError]:
    """Why the run in ``run_dir`` cannot be continued (None when it can), naming what works instead."""
    if not holds_run(run_dir):
        fix = ("pass the folder printed by `siamlab train`" if owner.checkpoints else
               "leave out resume=True to start a run there")
        return RunDirError(f"cannot resume: {str(run_dir)!r} holds no run; {fix}.")
    if owner.checkpoints and not has_checkpoint(run_dir):
        return RunDirError(f"cannot resume {str(run_dir)!r}: it stopped before its first checkpoint; start it again "
                           f"with `{restart_command(run_dir)}`.")
    return None


def remove_outputs(run_dir: Path) -> None:
    """``--overwrite``: delete the files a run writes (never anything else a user keeps in the folder)."""
    run_dir = Path(run_dir)
    for path in [run_dir / n for n in RUN_OUTPUTS] + sorted(run_dir.glob("error-rank*.txt")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_temp_files(run_dir: Path) -> list:
    """Temporary files of atomic writes a killed process left in the run directory; returns what was removed.
    Call it only while holding the run's lock: a live writer's temporary file must not be touched."""
    run_dir = Path(run_dir)
    gone = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "snapshots"):
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def open_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False,
                 owner: Owner = TRAINING) -> tuple[Path, RunLock]:
    """Lock the run directory for writing, as the rules of this module say; returns it and the held lock.

    New run: refused when the folder holds a run, unless ``overwrite`` (its outputs are then removed, under the
    lock). Resume: the folder must hold a run that can be continued (:func:`refuse_resume`). Either way the
    temporary files of interrupted writes go. A folder that cannot be made or written (permissions, a read-only
    or full disk) is one sentence too. ``owner``: the words of the messages (training's or the Monitor's).
    """
    run_dir = Path(run_dir)
    if resume and not holds_run(run_dir):  # nothing is made for a refused resume
        raise refuse_resume(run_dir, owner)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()  # first: a run being written is "in use", whatever its files say yet
    except OSError as err:
        raise RunDirError(f"cannot write into {owner.what} {str(run_dir)!r} ({err.strerror or type(err).__name__}); "
                          f"{owner.elsewhere} or fix the folder's permissions.") from None
    try:
        refused = refuse_resume(run_dir, owner) if resume else None
        if refused is not None:
            raise refused
        if not resume and holds_run(run_dir):
            if not overwrite:
                raise refuse_existing(run_dir, owner)
            remove_outputs(run_dir)
        remove_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return run_dir, lock


def claim(pick, resume: bool, overwrite: bool, owner: Owner = TRAINING) -> tuple:
    """(path, lock, created): rank 0 takes the folder ``pick()`` returns, checks and locks it
    (:func:`open_run_dir`); every rank gets its path, or the same one-sentence error (other ranks hold no lock).
    ``created``: the folder did not exist before."""
    path, lock, created, error = None, None, False, None
    if collectives.is_main():
        try:
            path = Path(pick())
            created = not path.exists()
            path, lock = open_run_dir(path, resume=resume, overwrite=overwrite, owner=owner)
        except SiamlabError as err:
            error = err
    if collectives.is_dist():  # every rank must agree on the directory
        path, error = collectives.broadcast_object((None if path is None else str(path), error))
    if error is not None:
        raise error
    return Path(path), lock, created


def claim_run_dir(cfg, run_dir: Optional[Path], resume: bool, overwrite: bool) -> tuple:
    """(path, lock, created) of a training run (:func:`claim`): ``run_dir``, else ``engine.out`` /
    ``engine.run_name``, else a free automatic name."""
    def pick() -> Path:
        if run_dir is not None:
            return Path(run_dir)
        if cfg.engine.run_name:
            return Path(cfg.engine.out) / cfg.engine.run_name
        # an automatic name is never refused: a taken one gets a suffix
        return free_name(Path(cfg.engine.out) / f"{cfg.method.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}")

    return claim(pick, resume, overwrite, TRAINING)


def remove_if_only_lock(run_dir: Path) -> None:
    """A new run refused while it was being built leaves no trace: its directory goes when it holds nothing
    but the (released) lock file."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
        shutil.rmtree(run_dir, ignore_errors=True)
