"""Process group, DDP and failures for torchrun (SPEC §6). All are no-ops in one process.

Launch with ``torchrun --nproc_per_node N -m siamlab train ...`` (see docs/distributed.md): torchrun
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_from_env` joins the
process group (NCCL for a CUDA device, gloo otherwise) with the timeout of $SIAMLAB_DIST_TIMEOUT
seconds (default 600).

Global-batch semantics. Every rank holds a contiguous slice of the global batch (in rank order) and
DDP averages parameter gradients over ranks. A loss that needs batch statistics gathers its tensors
(:mod:`siamlab.collectives`, the layer below the losses), and batch norm is replaced by a synchronized
one (:func:`convert_sync_batchnorm`; PyTorch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` on the
CPU, where PyTorch's has no kernel). With both, N processes holding a slice each compute the same loss
and the same gradients as one process holding the batch.

Failures. A rank that fails writes one line to the rendezvous store (:func:`announce_failure`) before
it exits; the others notice (a gloo collective fails at once when a peer closes its sockets; under
NCCL :class:`FailureWatch` sees the line within a second and aborts the process group; the process
group timeout is the last resort) and stop with :class:`PeerFailure`, which names the failed rank.
"""
from __future__ import annotations

import datetime
import gc
import inspect
import os
import threading
import time
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..collectives import all_reduce_sum_with_grad, is_dist, rank, world_size
from ..errors import ConfigError, SiamlabError

TIMEOUT_ENV = "SIAMLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
FAILED_KEY = "siamlab/failed/"


class RankFailure(SiamlabError):
    """This rank failed; the message says where, and the other ranks were told."""


class PeerFailure(SiamlabError):
    """This rank stopped because another rank failed or could no longer be reached."""


# --- launch environment ------------------------------------------------------------------------------
def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_world_size() -> int:
    """WORLD_SIZE set by the launcher (1 without one)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable WORLD_SIZE={value!r} is not an integer; launch with torchrun.") from None


def backend() -> Optional[str]:
    return dist.get_backend() if is_dist() else None


# --- joining and leaving ------------------------------------------------------------------------------
def timeout_seconds() -> float:
    """The process-group timeout: $SIAMLAB_DIST_TIMEOUT seconds, default 600."""
    value = os.environ.get(TIMEOUT_ENV, "")
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"environment variable {TIMEOUT_ENV}={value!r} is not valid: expected a number of seconds > 0.")
    return seconds


def init_from_env(device: Optional[torch.device] = None) -> None:
    """Join the process group when launched with WORLD_SIZE > 1: NCCL for a CUDA ``device``, gloo otherwise
    (``device=None``: NCCL when CUDA is available)."""
    if is_dist() or launched_world_size() <= 1:
        return
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ConfigError(f"WORLD_SIZE is {launched_world_size()} but {var} is not set; launch with torchrun "
                              "(see docs/distributed.md).")
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    kwargs = {"device_id": device} if cuda and device is not None and device.index is not None else {}
    dist.init_process_group(backend="nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=timeout_seconds()), **kwargs)


def cleanup() -> None:
    shutdown(failed=False)


def shutdown(failed: bool = False) -> None:
    """Leave the process group; after a failure NCCL communicators are aborted instead (no waiting on a dead peer)."""
    if not is_dist():
        return
    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    if failed and backend() == "nccl" and abort is not None:
        abort()
        return
    if not failed:  # leave together: a rank that exits while a peer still talks to it can abort the peer
        dist.barrier()
    # Free DDP reducers and finished gloo work caught in reference cycles while the interpreter is whole:
    # destroyed during interpreter shutdown, work holding tensors can abort the process (pytorch#179291).
    gc.collect()
    dist.destroy_process_group()


# --- synchronized batch norm ---------------------------------------------------------------------------------
class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch for CPU (gloo) runs: statistics from all ranks, gradient included.

    Training mode under torch.distributed: per channel, the sums Σx, Σx² (accumulated in float64) and
    the count are summed over ranks by a gradient-carrying all-reduce, then mean = Σx/n and biased
    variance Σx²/n − mean² normalize the input in its own dtype, exactly as ``BatchNorm`` does on the
    concatenated batch; running
    statistics use the unbiased variance, like PyTorch. Otherwise (eval mode, one process) it is plain
    batch norm. Accepts [N, C] and [N, C, *] inputs.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {x.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        count = torch.full((1,), float(x.numel() // c), dtype=torch.float64, device=x.device)
        sums = [x.sum(dims, dtype=torch.float64), x.square().sum(dims, dtype=torch.float64), count]
        stats = all_reduce_sum_with_grad(torch.cat(sums))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.square()).clamp_min(0.0)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        if self.affine:
            y = y * self.weight.to(x.dtype).view(shape) + self.bias.to(x.dtype).view(shape)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), n.detach())
        return y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * n / (n - 1.0).clamp_min(1.0)
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)


def _to_global_bn(bn: nn.modules.batchnorm._BatchNorm) -> GlobalBatchNorm:
    new = GlobalBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias  # the same Parameter objects
    if bn.track_running_stats:
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every batch norm in ``module`` made global: PyTorch's SyncBatchNorm on CUDA, GlobalBatchNorm on the CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        return _to_global_bn(module)
    for name, child in list(module.named_children()):
        new = convert_sync_batchnorm(child, device)
        if new is not child:
            module.add_module(name, new)
    return module


def wrap_ddp(method: nn.Module, cfg, device: torch.device, find_unused: bool = False):
    """Global batch norm (when ``model.sync_bn``) and DistributedDataParallel around ``method``.

    A module whose steps leave some parameters without gradient says so with ``unused_parameters =
    True`` (alternating Symmetric Predictor, phase schedules; the trainer's LossStep passes its
    method's flag on); DDP then looks for them every step, from the module's outputs.
    Buffers are broadcast from rank 0 at every forward only without sync_bn (each rank's running
    statistics would differ); with it every buffer is already identical on all ranks.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    if cfg.model.sync_bn:
        method = convert_sync_batchnorm(method, device)
    ids = [device.index] if device.type == "cuda" else None
    sync_buffers = not cfg.model.sync_bn
    # PyTorch >= 2.13 renamed broadcast_buffers (both still sync every buffer once, at construction)
    buffers = ({"forward_sync_buffers": sync_buffers} if "forward_sync_buffers" in inspect.signature(DDP).parameters
               else {"broadcast_buffers": sync_buffers})
    unused = bool(find_unused or cfg.phases or getattr(method, "unused_parameters", False))
    return DDP(method, device_ids=ids, find_unused_parameters=unused, **buffers)


# --- failures ------------------------------------------------------------------------------------------------
def _store():
    getter = getattr(dist.distributed_c10d, "_get_default_store", None)
    if not is_dist() or getter is None:
        return None
    try:
        return getter()
    except Exception:  # noqa: BLE001 - no store, nothing to report through
        return None


_COMM_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout", "process group")


def is_communication_error(err: BaseException) -> bool:
    """Whether ``err`` comes from a collective that could not complete (dead, hung or aborted peer)."""
    dist_error = getattr(dist, "DistError", ())
    if dist_error and isinstance(err, dist_error):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(w in text for w in _COMM_WORDS)


def announce_failure(message: str) -> None:
    """Tell the other ranks (through the rendezvous store) why this rank is stopping."""
    store = _store()
    if store is None:
        return
    try:
        store.set(f"{FAILED_KEY}{rank()}", message)
    except Exception:  # noqa: BLE001 - the store may be gone with rank 0; the peers then time out
        pass


def _announced(store, keys: list) -> Optional[str]:
    for key in keys:
        if store.check([key]):
            return store.get(key).decode()
    return None


def peer_failure(wait_s: float = 0.0) -> Optional[str]:
    """The line another rank announced, polling up to ``wait_s`` seconds; None if none did. When the
    store cannot be reached, a line saying so (it lives in rank 0 or the torchrun agent)."""
    store = _store()
    if store is None:
        return None
    deadline = time.monotonic() + wait_s
    keys = [f"{FAILED_KEY}{r}" for r in range(world_size()) if r != rank()]
    while True:
        try:
            line = _announced(store, keys)
        except Exception:  # noqa: BLE001
            return "the rendezvous store stopped answering (its host, rank 0 or the torchrun agent, has exited)"
        if line is not None or time.monotonic() >= deadline:
            return line
        time.sleep(0.1)


class FailureWatch:
    """Background thread that polls the store for another rank's failure line.

    On one: aborts the process group when it is NCCL (NCCL does not notice a dead peer by itself; the
    blocked collective then raises in the main thread, which reports it); if the process is still
    running ``grace_s`` seconds later it calls ``on_stuck(line)`` and exits the process with status 1.
    """

    def __init__(self, on_stuck: Optional[Callable[[str], None]] = None, poll_s: float = 1.0, grace_s: float = 60.0):
        self.on_stuck, self.poll_s, self.grace_s = on_stuck, poll_s, grace_s
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "FailureWatch":
        if is_dist() and _store() is not None:
            self._thread = threading.Thread(target=self._run, name="siamlab-failure-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread, so that no store request is in flight when the process
        group is destroyed (a thread inside one at exit aborts the interpreter)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        store = _store()
        keys = [f"{FAILED_KEY}{r}" for r in range(world_size()) if r != rank()]
        while not self._stop.wait(self.poll_s):
            try:
                line = _announced(store, keys)
            except Exception:  # noqa: BLE001 - store gone (rank 0 finished or died): the collectives will say
                return
            if line is None:
                continue
            abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
            if backend() == "nccl" and abort is not None:
                abort()
            if self._stop.wait(self.grace_s):
                return
            if self.on_stuck is not None:
                self.on_stuck(line)
            os._exit(1)
