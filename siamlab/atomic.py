"""Atomic file writes, for every layer: the contents go into a temporary file
``.<name>.<random>.siamlab-tmp`` in the target's folder, flushed to disk, then renamed over the target, so a
kill or a failed write leaves either the old file or the new one. On any error the temporary file is removed
and the error propagates; callers turn an OSError into their own sentence (the engine's
:class:`~siamlab.engine.runlog.WriteFailed`, ``siamlab analyze``'s plot message)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".siamlab-tmp"  # temporary files of atomic writes: .<name>.<random>.siamlab-tmp


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file object whose contents replace ``path`` at once when the block ends without error."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
