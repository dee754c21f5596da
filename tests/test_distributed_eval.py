"""Sharded evaluation under torchrun (SPEC §6): each rank embeds a contiguous part of each split, the parts
are gathered, and the metrics equal the one-process evaluation.

The same file is the worker (``python tests/test_distributed_eval.py eval OUT`` once per rank, with the
environment torchrun would give it, as in tests/test_distributed.py).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_distributed import ROOT, WORLD, dist_env, free_port

N_TRAIN, N_TEST = 301, 149  # odd: the parts of 2 ranks differ by one sample
BATCH = 64  # several batches per part, the last one partial


def launch(args: list) -> list:
    """``python tests/test_distributed_eval.py ARGS`` once per rank (gloo), as tests/test_distributed.py does."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=dist_env(r, WORLD, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(WORLD)]
    outs = [p.communicate(timeout=170) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def build():
    from siamlab import config
    from siamlab.engine.build import build_run, seed_everything

    cfg = config.load(None, ["data.name=digits", f"data.train_subset={N_TRAIN}", f"data.test_subset={N_TEST}",
                             "model.backbone=convnet", "model.width=4", "model.proj_hidden=16", "model.proj_out=8",
                             "model.pred_hidden=4", "eval.knn_k=20"])
    seed_everything(0)
    train_ds, test_ds, augment, method = build_run(cfg, torch.device("cpu"))
    rows = {"n": 0}
    embed = method.embed

    def counting_embed(x):
        rows["n"] += x.shape[0]
        return embed(x)

    method.embed = counting_embed
    return cfg, train_ds, test_ds, augment, method, rows


def run_eval() -> dict:
    from siamlab.eval.evaluate import evaluate

    cfg, train_ds, test_ds, augment, method, rows = build()
    feats = {}
    res = evaluate(method, train_ds, test_ds, augment, cfg.eval, batch_size=BATCH, on_features=feats.update)
    return {"metrics": res, "test_features": feats, "rows": rows["n"]}


def worker_eval(out_dir: str) -> None:
    from siamlab import collectives
    from siamlab.engine import dist

    dist.init_from_env(torch.device("cpu"))
    got = run_eval()
    torch.save(got, Path(out_dir) / f"eval{collectives.rank()}.pt")
    dist.cleanup()


def test_shards_cover_every_index_once_in_order():
    from siamlab.eval.features import shard_span

    for n in (1, 2, 7, 149, 301, 512):
        for world in (1, 2, 3, 4, 8):
            spans = [shard_span(n, r, world) for r in range(world)]
            assert torch.equal(torch.cat([torch.arange(a, b) for a, b in spans]), torch.arange(n)), (n, world)
            sizes = [b - a for a, b in spans]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True), (n, world)


def test_two_process_evaluation_matches_one_process(tmp_path):
    """2 gloo processes: every rank embeds only its part (151 + 75 or 150 + 74 rows) and returns the
    one-process metrics and test features. Tolerance: accuracies (counts of correct samples) exactly
    equal; the continuous quantities and the features to float32 rounding (rel 1e-5, abs 1e-6): the parts
    start at other batch boundaries, which may change the last bits of a sample's features."""
    outs = launch(["eval", str(tmp_path)])
    assert all(rc == 0 for rc, _, _ in outs), [e[-2000:] for _, _, e in outs]
    ref = run_eval()
    assert ref["rows"] == N_TRAIN + N_TEST
    parts = [torch.load(tmp_path / f"eval{r}.pt", weights_only=True) for r in range(WORLD)]
    assert [p["rows"] for p in parts] == [151 + 75, 150 + 74]
    for got in parts:
        assert got["metrics"].keys() == ref["metrics"].keys()
        for k, v in ref["metrics"].items():
            if k.startswith(("knn_", "ncm_")):
                assert got["metrics"][k] == v, k
            else:
                assert got["metrics"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
        assert got["test_features"].keys() == ref["test_features"].keys()
        for k, f in ref["test_features"].items():
            assert got["test_features"][k].shape == (N_TEST, f.shape[1])
            torch.testing.assert_close(got["test_features"][k], f, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    job, *rest = sys.argv[1:]
    {"eval": worker_eval}[job](*rest)
