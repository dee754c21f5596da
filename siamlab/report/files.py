"""Result files — results tables, reports, figures, probe arrays, diagnoses, exports — written atomically.

Each goes through :func:`siamlab.engine.runlog.atomic_file` (a temporary file in the target's folder, flushed
to disk, then renamed over the target): a write that fails (a full disk, a quota, permissions) leaves the
previous file as it was and no temporary file, and raises :class:`~siamlab.engine.runlog.WriteFailed`, one
sentence naming the file and the reason. Unlike a training run's files there is nothing to resume: the fix
is to run the command again (``siamlab reproduce`` reuses the runs that finished).
"""
from __future__ import annotations

import io
from pathlib import Path

from ..engine.runlog import atomic_file


def write_result(path: Path, data) -> None:
    """``data`` (text or bytes) to ``path`` atomically."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def save_figure(fig, path: Path, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG at ``path``, drawn in memory and written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_result(path, buf.getbuffer())
