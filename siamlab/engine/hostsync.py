"""Find the operations that would make a training step wait for the GPU, on any device (CPU included).

On CUDA a step should only enqueue work: reading a value back (``.item()``, ``int(t)``, ``bool(t)``,
``if t:``), an output whose size depends on the data (``nonzero``, boolean-mask indexing, ``unique``,
``masked_select``, ``bincount``), or a tensor made from Python data (``torch.tensor([...], device=...)``,
a blocking host-to-device copy) stops the host until the device has caught up, and the GPU idles while
the host prepares the next kernels. These operations are the same whatever the device, so
:class:`HostSyncCheck` (a ``TorchDispatchMode``) can find them in a CPU run: tests use it to prove the
step GPU-friendly without a GPU (``tests/test_hostsync.py``); ``torch.cuda.set_sync_debug_mode`` is the
CUDA-only counterpart.

    with HostSyncCheck() as check:
        trainer.train_step(idx)
    assert not check.found, check.report()

Not seen by a dispatch mode: ``Tensor.tolist()`` and copies of tensors that already live on the host
(e.g. a CPU index moved with ``non_blocking=True`` from pinned memory, which does not wait). Code that
must read a value outside log steps keeps a Python number beside its buffer instead.
"""
from __future__ import annotations

import traceback
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

READ_BACK = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default}
DATA_DEPENDENT_SHAPE = {aten.nonzero.default, aten.masked_select.default, aten.bincount.default,
                        aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default,
                        aten.repeat_interleave.Tensor}
FROM_PYTHON = {aten.lift_fresh.default}  # torch.tensor(data): a blocking copy when made on a GPU
BOOL_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


def _where() -> str:
    """The innermost siamlab frame outside this module (file:line function), or '?'."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "siamlab" in frame.filename and not frame.filename.endswith("hostsync.py"):
            return f"{frame.filename.split('siamlab/', 1)[-1]}:{frame.lineno} {frame.name}"
    return "?"


class HostSyncCheck(TorchDispatchMode):
    """Records each operation that synchronizes a GPU with the host, with where in siamlab it happened."""

    def __init__(self):
        super().__init__()
        self.found: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kind = None
        if func in READ_BACK:
            kind = "reads a value back"
        elif func in DATA_DEPENDENT_SHAPE:
            kind = "has a data-dependent output size"
        elif func in FROM_PYTHON:
            kind = "makes a tensor from Python data"
        elif func in BOOL_INDEXED and _has_bool_index(args):
            kind = "indexes with a boolean mask"
        if kind is not None:
            self.found[f"{func.__name__} {kind} at {_where()}"] += 1
        return func(*args, **(kwargs or {}))

    def report(self) -> str:
        return "; ".join(f"{k} (x{n})" for k, n in self.found.most_common()) or "no host synchronization"
