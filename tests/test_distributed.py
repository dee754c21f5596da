"""torchrun / DDP on CPU (gloo, 2 processes): global-batch parity, training + resume, failure handling.

The same file is the worker: ``python tests/test_distributed.py parity OUT`` run once per rank with
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set (what torchrun sets) computes, for every method that
uses batch statistics, two SGD steps on its half of the global batch and rank 0 saves the losses
(averaged over ranks), the DDP-averaged gradients and the final buffers. The test computes the same two
steps in one process on the whole batch and compares: N processes with 1/N of the batch each must
compute what one process computes on the batch (global batch norm, gathered losses, DDP averaging).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
BATCH = 16  # global batch; 8 per rank
DIM = 6  # input vectors
STEPS = 2
# methods left out of the parity test, with the reason (none: the triplets draw their negative from the global batch)
SKIP: dict = {}
# small sizes so that every method fits a batch of 16 (queue / prototypes / whitening sub-batches)
METHOD_SETS = {
    "moco": ["method.queue_size=32"], "swav": ["method.num_prototypes=10", "method.freeze_prototypes_steps=1"],
    "dino": ["method.out_dim=12"], "wmse": ["method.w_size=16"], "bridge": ["method.k=4"],
    "directpred": ["method.freq=1"], "decorrelation": [],
}
# float64 everywhere: differences come from summation order only
RTOL, ATOL = 1e-7, 1e-9
# diagnostics that are zero in exact arithmetic (e.g. the extra gradient of Naive Siamese) come out at
# ~1e-5 of noise on either side; a diagnostic that missed the global batch would be off by ~1e-2 or more
DIAG_ATOL = 2e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_env(rank: int, world: int, port: int) -> dict:
    return dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def launch(args: list, world: int = WORLD, timeout: float = 170) -> list:
    """Run ``python tests/test_distributed.py ARGS`` once per rank; returns the CompletedProcess-like results."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=dist_env(r, world, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        outs.append((p.returncode, out, err))
    return outs


# --- the computation, shared by the workers and the one-process reference ------------------------
CONV = "simsiam+convnet"  # also a conv backbone (BatchNorm2d) on 1×8×8 images
ALTERNATING = "sympred+alternating"  # a step leaves parameters without gradient (DDP must look for them)
METHOD_SETS[ALTERNATING] = ["method.variant=alternating"]


def method_names() -> list:
    from siamlab.methods import available

    return [m for m in available() if m not in SKIP] + [CONV, ALTERNATING]


def in_shape(name: str) -> tuple:
    return (1, 8, 8) if name == CONV else (DIM,)


def build(name: str):
    from siamlab import config
    from siamlab.methods import build_method
    from siamlab.models import build_encoder

    model = ["model.backbone=convnet", "model.width=4"] if name == CONV else ["model.backbone=mlp", "model.width=16"]
    cfg = config.load(None, [*model, "model.proj_hidden=16", "model.proj_out=8", "model.pred_hidden=4",
                             f"method.name={name.split('+')[0]}", *METHOD_SETS.get(name, [])])
    torch.manual_seed(0)
    method = build_method(cfg.method, build_encoder(cfg.model, in_shape(name)), cfg.model)
    method.bind_dataset(BATCH * STEPS)
    return cfg, method.double()


def batch(name: str, step: int) -> tuple:
    """Views of the global batch of ``step``: a random base plus a small per-view perturbation."""
    g = torch.Generator().manual_seed(100 + step)
    base = torch.randn(BATCH, *in_shape(name), generator=g, dtype=torch.float64)
    views = [base + 0.3 * torch.randn(base.shape, generator=g, dtype=torch.float64) for _ in range(2)]
    return views, torch.arange(BATCH) + step * BATCH


def run_steps(name: str, rank: int = 0, world: int = 1) -> dict:
    """STEPS SGD steps of method ``name``; this process holds rows [rank·b, (rank+1)·b) of each batch."""
    from siamlab.analysis.live import LiveDiagnostics
    from siamlab import collectives
    from siamlab.engine import dist
    from siamlab.engine.step import LossStep

    cfg, method = build(name)
    model = LossStep(method)  # what the trainer runs: forward + loss, wrapped in DDP
    model = dist.wrap_ddp(model, cfg, torch.device("cpu")) if world > 1 else model
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    b = BATCH // world
    rows = slice(rank * b, (rank + 1) * b)
    record = {"loss": [], "grads": []}
    for step in range(STEPS):
        views, index = batch(name, step)
        method.on_epoch_start(0)
        loss, _, out = model([v[rows] for v in views], index[rows])
        if step == 0:  # live diagnostics see the global batch too (they gather)
            record["diag"] = LiveDiagnostics(method, every_steps=1)(out, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        record["loss"].append(float(collectives.all_reduce_mean(loss.detach())))
        record["grads"].append({k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None})
        opt.step()
        method.after_step(step, 10)
    record["state"] = {k: v.clone() for k, v in method.state_dict().items()}
    return record


def worker_parity(out_dir: str) -> None:
    from siamlab import collectives
    from siamlab.engine import dist

    dist.init_from_env(torch.device("cpu"))
    results, errors = {}, {}
    for name in method_names():
        try:
            results[name] = run_steps(name, collectives.rank(), collectives.world_size())
        except Exception as err:  # reported by the test, per method
            errors[name] = f"{type(err).__name__}: {err}"
    if collectives.is_main():
        torch.save({"results": results, "errors": errors}, Path(out_dir) / "parity.pt")
    dist.cleanup()


def worker_fail(out_dir: str, fail_rank: str) -> None:
    """The CLI under torchrun where rank ``fail_rank``'s loss raises at its 4th step."""
    from siamlab import cli
    from siamlab.methods.simsiam import SimSiam

    orig, calls = SimSiam.loss, {"n": 0}

    def loss(self, out):
        calls["n"] += 1
        if calls["n"] == 4 and os.environ["RANK"] == fail_rank:
            raise ValueError("injected failure")
        return orig(self, out)

    SimSiam.loss = loss
    sys.exit(cli.main(["train", *toy_args(out_dir, "fail", epochs=50)]))


def worker_half(out_dir: str) -> None:
    """Epoch 1 of a 2-epoch run (the 2-epoch schedule), as test_engine's exact-resume test does."""
    from siamlab import config
    from siamlab.engine import dist
    from siamlab.engine.trainer import Trainer

    t = Trainer(config.load(None, toy_sets(out_dir, "half")))
    t.cfg.optim.epochs = 1
    t.fit()
    dist.cleanup()


def toy_sets(out_dir, name, epochs=2) -> list:
    """SimSiam on the blobs without augmentation noise (identity views), so that runs with different
    numbers of processes see the same inputs and must reach the same weights."""
    return ["method.name=simsiam", "data.name=blobs", "data.augment=identity", "model.backbone=mlp", "model.width=32", "model.proj_hidden=32",
            "model.proj_out=16", "model.pred_hidden=8", "optim.batch_size=64", f"optim.epochs={epochs}",
            "diag.every_steps=5", "eval.knn_k=20", "engine.progress=false", f"engine.out={out_dir}",
            f"engine.run_name={name}"]


def toy_args(out_dir, name, epochs=2) -> list:
    return [a for s in toy_sets(out_dir, name, epochs) for a in ("--set", s)]


def metrics(run_dir: Path) -> list:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- tests -------------------------------------------------------------------------------------------
def test_contiguous_shards_rebuild_the_one_process_batch():
    from siamlab.data.order import epoch_order, local_span

    order = epoch_order(103, seed=5, epoch=2)
    for world in (1, 2, 4):
        for step in range(103 // 16):
            parts = [order[slice(*local_span(step, 16, r, world))] for r in range(world)]
            assert {len(p) for p in parts} == {16 // world}
            assert torch.equal(torch.cat(parts), order[step * 16:(step + 1) * 16])
    assert torch.equal(epoch_order(103, 5, 2), order) and not torch.equal(epoch_order(103, 5, 3), order)


def test_fast_path_options_run_on_cpu_and_the_step_never_reads_back(tmp_path):
    """bf16 autocast and channels_last train on the CPU too; a step's record holds tensors (loss, terms,
    probe), not Python numbers, so the loop synchronizes only at log steps. (engine.compile:
    tests/test_engine.py; no synchronization inside the step: tests/test_hostsync.py.)"""
    from siamlab import config
    from siamlab.engine.trainer import Trainer

    cfg = config.load(None, ["data.name=digits", "data.train_subset=256", "data.test_subset=64", "model.backbone=convnet",
                             "model.width=4", "model.proj_hidden=16", "model.proj_out=8", "model.pred_hidden=4",
                             "optim.batch_size=32", "optim.epochs=1", "engine.bf16=true", "engine.channels_last=true",
                             "engine.progress=false", "eval.random_init=false", "diag.every_steps=0",
                             f"engine.out={tmp_path}", "engine.run_name=fast"])
    t = Trainer(cfg)
    assert next(t.method.encoder.backbone.parameters()).is_contiguous(memory_format=torch.channels_last)
    rec = t.train_step(torch.arange(32))
    assert {"loss", "probe_loss", "probe_acc"} <= rec.keys()
    assert all(isinstance(rec[k], torch.Tensor) for k in ("loss", "probe_loss", "probe_acc"))
    assert t.fit().summary["status"] == "completed"


def test_sync_conversion_keeps_parameters_and_buffers():
    """GlobalBatchNorm replaces every BN in place, sharing its Parameters / buffers (the optimizer and
    checkpoints see the same tensors); in one process it is plain batch norm (same values)."""
    from siamlab.engine import dist

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
    before = net.state_dict()
    weight, running = net[1].weight, net[2][0].running_mean
    x = torch.randn(8, 4)
    y = net(x)
    net.load_state_dict(before)
    out = dist.convert_sync_batchnorm(net, torch.device("cpu"))
    assert out is net and isinstance(net[1], dist.GlobalBatchNorm) and isinstance(net[2][0], dist.GlobalBatchNorm)
    assert net[1].weight is weight and net[2][0].running_mean is running
    assert net.state_dict().keys() == before.keys()
    torch.testing.assert_close(net(x), y)


def test_two_processes_match_one_process_for_every_batch_statistics_method(tmp_path):
    outs = launch(["parity", str(tmp_path)])
    assert all(rc == 0 for rc, _, _ in outs), [e[-2000:] for _, _, e in outs]
    got = torch.load(tmp_path / "parity.pt", weights_only=True)
    assert not got["errors"], got["errors"]
    names = method_names()
    assert {"simclr", "moco", "barlow", "vicreg", "swav", "wmse", "bridge", "dino", "center", "decorrelation",
            "simsiam", "byol"} <= set(names) == set(got["results"])
    for name in names:
        ref, two = run_steps(name), got["results"][name]
        for step in range(STEPS):
            assert two["loss"][step] == pytest.approx(ref["loss"][step], rel=RTOL, abs=ATOL), (name, step)
            assert ref["grads"][step].keys() == two["grads"][step].keys(), name
            for k, g in ref["grads"][step].items():
                torch.testing.assert_close(two["grads"][step][k], g, rtol=RTOL, atol=ATOL, msg=f"{name} step {step} grad {k}")
        assert two["diag"].keys() == ref["diag"].keys(), name
        for k, v in ref["diag"].items():
            assert two["diag"][k] == pytest.approx(v, rel=1e-6, abs=DIAG_ATOL, nan_ok=True), (name, "diagnostic", k)
        for k, v in ref["state"].items():
            if v.is_floating_point():
                torch.testing.assert_close(two["state"][k], v, rtol=RTOL, atol=ATOL, msg=f"{name} state {k}")
            else:
                assert torch.equal(two["state"][k], v), (name, k)


def test_two_process_checkpoint_resumes_in_one_or_two_processes_like_a_one_process_run(tmp_path):
    """Epoch 1 on 2 processes, then epoch 2 resumed in 1 process (API) and, from a copy, in 2 processes
    (CLI --resume): both end with the weights of 2 epochs in 1 process (same global batches)."""
    from siamlab import config
    from siamlab.engine.trainer import train

    outs = launch(["half", str(tmp_path / "two")])
    assert all(rc == 0 for rc, _, _ in outs), [e[-2000:] for _, _, e in outs]
    run = tmp_path / "two" / "half"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2 and state["epoch"] == 1
    steps = [r["step"] for r in metrics(run) if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "only rank 0 logs"
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    shutil.copytree(run, tmp_path / "copy")

    procs = cli_procs(["train", "--resume", str(tmp_path / "copy")])
    resumed = train(config.load(None, toy_sets(tmp_path / "two", "half")), run_dir=str(run), resume=True)
    outs = [p.communicate(timeout=170) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    straight = train(config.load(None, toy_sets(tmp_path / "one", "straight")))
    ref = torch.load(straight.run_dir / "checkpoints" / "last.pt", weights_only=True)
    for run_dir in (resumed.run_dir, tmp_path / "copy"):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps"] == straight.summary["steps"] == 2 * (1500 // 64)
        got = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
        for part in ("method", "probe"):  # float32, 46 SGD steps: summation order only
            for k, v in ref[part].items():
                if v.is_floating_point():
                    torch.testing.assert_close(got[part][k], v, rtol=1e-4, atol=1e-5, msg=f"{run_dir} {part} {k}")
        losses = [r["loss"] for r in metrics(run_dir) if r["kind"] == "train"]
        assert losses == pytest.approx([r["loss"] for r in metrics(straight.run_dir) if r["kind"] == "train"],
                                       rel=1e-4, abs=1e-5)


def cli_procs(args: list, world: int = WORLD) -> list:
    """``python -m siamlab ARGS`` once per rank, with the environment torchrun would give it."""
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", "siamlab", *args], cwd=ROOT, env=dist_env(r, world, port),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]


def test_the_documented_torchrun_command_trains_with_two_processes(tmp_path):
    """The launch docs/distributed.md gives, with the real torchrun (its rendezvous, its environment):
    one run directory written by rank 0, a summary that records 2 processes, results printed once."""
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "siamlab", "train",
                          *toy_args(tmp_path, "trun"), "--set", "engine.device=cpu"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "trun" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert res.stdout.count("status: completed") == 1, res.stdout
    assert (tmp_path / "trun" / "checkpoints" / "last.pt").exists()


def test_sigterm_to_one_rank_stops_all_at_the_same_step_with_a_checkpoint(tmp_path):
    procs = cli_procs(["train", *toy_args(tmp_path, "sig", epochs=300), "--set", "eval.every_epochs=0"])
    wait_for_training(tmp_path / "sig")
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [128 + signal.SIGTERM] * 2, [e for _, e in outs]
    assert all("Traceback" not in e for _, e in outs)
    summary = json.loads((tmp_path / "sig" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "another process" in summary["message"]
    state = torch.load(tmp_path / "sig" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == summary["steps"] > 0
    assert [r["step"] for r in metrics(tmp_path / "sig") if r["kind"] == "train"][-1] == state["step"]  # a log step
    assert summary["steps"] < 300 * (1500 // 64)


def wait_for_training(run_dir: Path, timeout: float = 120) -> None:
    log = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and not (log.exists() and '"train"' in log.read_text()):
        time.sleep(0.2)


def test_a_killed_rank_makes_the_other_stop_with_lost_contact(tmp_path):
    """Rank 1 dies without a word (SIGKILL): rank 0 stops with one line and a failed summary."""
    procs = cli_procs(["train", *toy_args(tmp_path, "kill", epochs=300), "--set", "eval.every_epochs=0"])
    wait_for_training(tmp_path / "kill")
    procs[1].kill()
    out, err = procs[0].communicate(timeout=120)
    procs[1].communicate(timeout=30)
    assert procs[0].returncode == 2
    lines = [x for x in err.splitlines() if x.startswith("siamlab: error:")]
    assert len(lines) == 1 and "rank 0 of 2 stopped: it lost contact with the other processes" in lines[0], err[-2000:]
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "kill" / "summary.json").read_text())
    assert summary["status"] == "failed" and "lost contact" in summary["message"]


def test_a_failing_rank_stops_the_other_with_one_line_each(tmp_path):
    """torchrun, rank 1's loss raises at its 4th call (step 2: the diagnostics call it too at step 0): both ranks exit non-zero with one 'siamlab: error' line,
    rank 0 names rank 1, the summary says failed, the traceback is in the run directory."""
    t0 = time.time()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           __file__, "fail", str(tmp_path), "1"]
    r = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=170)
    assert r.returncode != 0
    assert time.time() - t0 < 120  # no process-group timeout was needed
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.startswith("siamlab: error:")]
    assert len(lines) == 2, r.stderr[-3000:]
    own = [x for x in lines if re.search(r"rank 1 of 2 failed at step \d+: ", x)]
    peer = [x for x in lines if re.search(r"rank 0 of 2 stopped because rank 1 failed at step \d+ ", x)]
    assert len(own) == 1 and len(peer) == 1, lines
    assert "ValueError: injected failure" in own[0] and "ValueError: injected failure" in peer[0]
    summary = json.loads((tmp_path / "fail" / "summary.json").read_text())
    assert summary["status"] == "failed" and "rank 1 failed" in summary["message"]
    assert "injected failure" in (tmp_path / "fail" / "error-rank1.txt").read_text()


if __name__ == "__main__":
    job, *rest = sys.argv[1:]
    {"parity": worker_parity, "fail": worker_fail, "half": worker_half}[job](*rest)
