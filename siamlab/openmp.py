"""OpenMP's wait policy, set before torch loads (siamlab/__init__.py imports this module first).

Threads of torch's OpenMP runtime (libgomp) that wait for each other sleep instead of spinning: a spinning
thread holds a core that another process needs, and on a shared 2-core machine the main job then ran 3-4x
slower (benchmarks/bench_shared.py). libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads; a value the
user set is kept.
"""
import os
import sys

USER_POLICY = os.environ.get("OMP_WAIT_POLICY")  # the user's own setting (None: unset)
TORCH_FIRST = "torch" in sys.modules  # torch loaded before siamlab: the setting below comes too late for it
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # (child processes still inherit it)
