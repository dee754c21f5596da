"""The training step never waits for the device (issue 7, "no host synchronization in the step").

A GPU step that reads a value back (``int(t)``, ``.item()``, ``bool(t)``), makes an output whose size
depends on the data (``nonzero``, boolean-mask indexing) or builds a tensor from Python data stalls
the host until the GPU catches up. :class:`HostSyncCheck` finds exactly these operations in a CPU run,
so these tests hold the whole step — augmentation, forward, loss, backward, optimizer, the method's
``after_step`` (EMA, queues, counters), the online probe — to zero of them for every method, without
a GPU. Log steps (every ``LOG_EVERY`` steps) and diagnostic steps read numbers back on purpose and
are not checked here.
"""
from __future__ import annotations

import pytest
import torch

from siamlab import config
from siamlab.engine.hostsync import HostSyncCheck
from siamlab.engine.trainer import Trainer
from siamlab.methods import available
from siamlab.methods.base import StepCounter

from test_all_methods import EXTRA

BATCH = 32


# --- the detector itself --------------------------------------------------------------------------
@pytest.mark.parametrize("op, what", [
    (lambda x: int(x.sum()), "_local_scalar_dense"),
    (lambda x: x.max().item(), "_local_scalar_dense"),
    (lambda x: bool((x > 0).any()), "_local_scalar_dense"),
    (lambda x: x[x > 0], "boolean mask"),
    (lambda x: (x > 0).nonzero(), "nonzero"),
    (lambda x: torch.tensor([1.0, 2.0]) * x[:2], "lift_fresh"),
    (lambda x: torch.unique(x), "unique"),
])
def test_detector_finds_each_kind_of_synchronization(op, what):
    x = torch.randn(8)
    with HostSyncCheck() as check:
        op(x)
    assert check.found and what in check.report(), check.report()


def test_detector_passes_device_friendly_code():
    x = torch.randn(8, 4, requires_grad=True)
    with HostSyncCheck() as check:
        y = torch.where(x > 0, x, 0.0).masked_fill(torch.eye(8, 4, dtype=torch.bool), 1.0)
        (y.softmax(1)[torch.arange(8), torch.arange(8) % 4].sum() * 2.0).backward()
        torch.randperm(8)
    assert not check.found, check.report()


def test_step_counter_is_read_without_the_device_and_survives_a_checkpoint():
    c = StepCounter()
    with HostSyncCheck() as check:
        c.add()
        c.add(2)
        assert int(c) == 3
    assert not check.found, check.report()
    d = StepCounter()
    d.load_state_dict(c.state_dict())
    assert int(d) == 3 and int(d.value) == 3


# --- the whole step -----------------------------------------------------------------------------------
DATA = {
    "digits": ["data.name=digits", "data.train_subset=128", "data.test_subset=32", "model.backbone=convnet"],
    "blobs": ["data.name=blobs", "data.train_subset=128", "data.test_subset=32", "model.backbone=mlp"],
    "rgb": ["data.name=synthetic", "data.train_subset=128", "data.test_subset=32", "model.backbone=convnet"],
}


def _trainer(tmp_path, name: str, data: str, extra=()) -> Trainer:
    args = [f"method.name={name}", "model.width=8", "model.proj_hidden=32", "model.proj_out=16", "model.pred_hidden=8",
            f"optim.batch_size={BATCH}", "optim.epochs=1", "diag.every_steps=0", "engine.progress=false",
            f"engine.out={tmp_path}", f"engine.run_name={name}-{data}", *DATA[data], *EXTRA.get(name, []), *extra]
    return Trainer(config.load(None, args))


def _syncs_in_steps(trainer: Trainer, warmup: int = 2, checked: int = 2) -> HostSyncCheck:
    """Run ``warmup`` steps (lazy buffers, first-step branches), then ``checked`` steps under the detector."""
    order = torch.randperm(len(trainer.train_ds))
    check = HostSyncCheck()
    for s in range(warmup + checked):
        idx = order[s * BATCH:(s + 1) * BATCH]
        if s < warmup:
            trainer.train_step(idx)
        else:
            with check:
                trainer.train_step(idx)
        trainer.step += 1
    return check


@pytest.mark.parametrize("name", sorted(available()))
def test_no_method_synchronizes_in_a_training_step(tmp_path, name):
    data = "blobs" if name == "eoa" else "digits"  # eoa's moving-average memory on the toy data it was made for
    check = _syncs_in_steps(_trainer(tmp_path, name, data))
    assert not check.found, f"{name}: {check.report()}"


@pytest.mark.parametrize("name, data, extra", [
    ("simsiam", "rgb", ["data.augment=zhang_a1"]),
    ("byol", "rgb", ["data.augment=bridge"]),  # asymmetric blur / solarize, applied with probability p
    ("simsiam", "rgb", ["data.augment=noise"]),
    ("simsiam", "blobs", ["data.augment=toy"]),
    ("sympred", "digits", ["method.variant=alternating"]),
    ("simsiam", "digits", ["optim.name=lars", "optim.grad_clip=1.0", "engine.bf16=true", "engine.channels_last=true",
                           "method.decor_weight=0.1"]),
])
def test_options_do_not_synchronize(tmp_path, name, data, extra):
    check = _syncs_in_steps(_trainer(tmp_path, name, data, extra))
    assert not check.found, f"{name} {extra}: {check.report()}"


def test_phase_switch_does_not_synchronize(tmp_path):
    """ZHANG Fig. 5b's phases: SimSiam, then Naive Siamese on the same encoder; both phases step freely."""
    cfg = config.load(None, ["method.name=simsiam", "model.width=8", "model.proj_hidden=32", "model.proj_out=16",
                             "model.pred_hidden=8", f"optim.batch_size={BATCH}", "optim.epochs=2", "diag.every_steps=0",
                             "engine.progress=false", f"engine.out={tmp_path}", *DATA["digits"]])
    cfg.phases = [{"epoch": 0, "method": {"name": "simsiam"}}, {"epoch": 1, "method": {"name": "naive"}}]
    trainer = Trainer(cfg)
    for epoch in (0, 1):
        trainer.method.on_epoch_start(epoch)
        check = _syncs_in_steps(trainer, warmup=1, checked=1)
        assert not check.found, f"phase {epoch}: {check.report()}"
