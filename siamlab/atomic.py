"""Atomic file writes, for every layer: the contents go into a temporary file
``.<name>.<random>.siamlab-tmp`` in the target's folder, flushed to disk, then renamed over the target, so a
kill or a failed write leaves either the old file or the new one. The file gets the permissions a plain
``open(path, "w")`` would give it, ``0o666`` less the process's umask (``mkstemp`` alone makes it ``0o600``,
which a group or a web server could not read). On any error the temporary file is removed and the error
propagates; callers turn an OSError into their own sentence (the engine's
:class:`~siamlab.engine.runlog.WriteFailed`, ``siamlab analyze``'s plot message)."""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

TEMP_SUFFIX = ".siamlab-tmp"  # temporary files of atomic writes: .<name>.<random>.siamlab-tmp
_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status), else set and
    restored at once under a lock (``os.umask`` is the only portable way to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """What ``open(path, "w")`` gives a new file: 0o666 less the umask (0o644 under umask 022, 0o600 under 077)."""
    return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file object whose contents replace ``path`` at once when the block ends without error."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())  # mkstemp made it 0o600
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
