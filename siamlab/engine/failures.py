"""What a rank says when a torchrun run fails: one sentence, the traceback in the run directory.

A failing rank announces why on the rendezvous store (:func:`~siamlab.engine.dist.announce_failure`);
the others stop because of it. Every rank raises a one-sentence :class:`~siamlab.errors.SiamlabError`
(``RankFailure`` on the rank that failed, ``PeerFailure`` on the others) and the summary says ``failed``.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable, Optional

from .. import collectives
from ..errors import SiamlabError
from . import dist
from .runlog import WriteFailed, atomic_write_text
from .signals import ignore_sigterm


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    return (line[:300] + "...") if len(line) > 300 else line.rstrip(".")


def write_traceback(run_dir: Path, rank: int, err: BaseException) -> Optional[Path]:
    """The full traceback of this rank's failure in RUN/error-rank<R>.txt (the console gets one line)."""
    path = Path(run_dir) / f"error-rank{rank}.txt"
    try:
        atomic_write_text(path, "".join(traceback.format_exception(type(err), err, err.__traceback__)))
    except WriteFailed:  # the one-sentence failure is still reported, without the file
        return None
    return path


def failure_error(err: BaseException, step: Optional[int] = None, run_dir: Optional[Path] = None,
                  record: Optional[Callable[[str], None]] = None) -> SiamlabError:
    """The one-sentence error a rank raises when a torchrun run fails (``step``, ``run_dir``: where the
    run was, when it got that far); ``record(cause)`` writes the failed summary on rank 0.

    If another rank announced a failure (polled for a few seconds when ``err`` is a broken collective),
    this rank stopped because of it: :class:`~siamlab.engine.dist.PeerFailure` naming that rank; a
    broken collective with no announcement (a peer died or hung past the timeout) is a PeerFailure
    too. Otherwise this rank is the one that failed: it announces it, keeps the traceback in the run
    directory and raises :class:`~siamlab.engine.dist.RankFailure`.
    """
    ignore_sigterm()
    if isinstance(err, (dist.RankFailure, dist.PeerFailure)):
        return err
    me = f"rank {collectives.rank()} of {collectives.world_size()}"
    comm = dist.is_communication_error(err)
    peer = dist.peer_failure(wait_s=5.0 if comm else 0.0)
    if peer is not None:
        exc: SiamlabError = dist.PeerFailure(f"{me} stopped because {peer}.")
        cause = peer
    elif comm:
        cause = f"rank {collectives.rank()} lost contact with the other processes ({type(err).__name__}: {first_line(err)})"
        dist.announce_failure(cause)
        exc = dist.PeerFailure(f"{me} stopped: it lost contact with the other processes ({first_line(err)}).")
    else:
        at = f" at step {step}" if step is not None else ""
        what = first_line(err) if isinstance(err, SiamlabError) else f"{type(err).__name__}: {first_line(err)}"
        cause = f"rank {collectives.rank()} failed{at} ({what})"
        dist.announce_failure(cause)
        tb = write_traceback(run_dir, collectives.rank(), err) if run_dir is not None else None
        exc = dist.RankFailure(f"{me} failed{at}: {what}; the other ranks were told to stop"
                               + (f" (traceback in {tb})" if tb else "") + ".")
    if record is not None and collectives.is_main():
        record(cause)
    return exc
