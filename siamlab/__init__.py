"""siamlab: joint-embedding self-supervised learning that explains collapse."""
from . import openmp  # noqa: F401  (first: OpenMP's wait policy must be set before torch loads)

__version__ = "0.1.0"

__all__ = ["Monitor", "fit", "l2n"]


def __getattr__(name):  # lazy, so that `import siamlab` (and the CLI's start) stays fast
    if name == "Monitor":
        from .interop.monitor import Monitor

        return Monitor
    if name == "fit":
        from .engine.user_run import fit

        return fit
    if name == "l2n":
        from .losses.functional import l2n

        return l2n
    raise AttributeError(f"module 'siamlab' has no attribute {name!r}")
