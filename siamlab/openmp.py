"""OpenMP's wait policy, set before torch loads (siamlab/__init__.py imports this module first).

Threads of torch's OpenMP runtime (libgomp) that wait for each other sleep instead of spinning: a spinning
thread holds a core that another process needs, and on a shared 2-core machine the main job then ran 3-4x
slower (benchmarks/bench_shared.py). libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads; a value the
user set is kept.
"""
import os
import sys

# The policy torch's OpenMP threads run with ("" = libgomp's default, spinning): the user's own when torch was
# loaded before siamlab, since the setting below then comes too late (child processes still inherit it).
POLICY = os.environ.get("OMP_WAIT_POLICY", "" if "torch" in sys.modules else "PASSIVE").upper()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
