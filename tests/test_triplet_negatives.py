"""The triplets' random negative drawn from the global batch (ZHANG §3.3): identical on every rank and to
one process, and restored exactly on resume (the generator state is in the method's state_dict)."""
from __future__ import annotations

import copy
import io

import pytest
import torch

from siamlab import collectives
from siamlab.methods.triplet import GlobalNegatives


def build(name: str):
    from siamlab import config
    from siamlab.methods import build_method
    from siamlab.models import build_encoder

    cfg = config.load(None, ["model.backbone=mlp", "model.width=16", "model.proj_hidden=16", "model.proj_out=8",
                             f"method.name={name}"])
    return build_method(cfg.method, build_encoder(cfg.model, (6,)), cfg.model)


def test_ranks_draw_their_rows_of_the_one_process_draw(monkeypatch):
    n, world = 5, 3
    one = GlobalNegatives()(n * world, torch.device("cpu"))
    assert (one != torch.arange(n * world)).all() and one.min() >= 0 and one.max() < n * world
    parts = []
    for r in range(world):
        monkeypatch.setattr(collectives, "rank", lambda r=r: r)
        monkeypatch.setattr(collectives, "world_size", lambda: world)
        parts.append(GlobalNegatives()(n, torch.device("cpu")))
    assert torch.equal(torch.cat(parts), one)


@pytest.mark.parametrize("name", ["triplet", "triplet_surgery"])
def test_resume_and_copies_continue_the_same_negatives(name):
    views = [torch.randn(8, 6), torch.randn(8, 6)]
    method = build(name)
    method(views)  # advance the generator
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    twin = copy.deepcopy(method)
    resumed = build(name)
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    want = method(views).extra["neg_index"]
    for other in (resumed, twin):
        got = other(views).extra["neg_index"]
        assert all(torch.equal(a, b) for a, b in zip(got, want)) if name == "triplet" else torch.equal(got, want)


def test_a_checkpoint_without_generator_state_still_loads():
    """Checkpoints written before the negatives were global (no ``negatives._extra_state``) load as before."""
    method = build("triplet_surgery")
    old = {k: v for k, v in method.state_dict().items() if not k.endswith("_extra_state")}
    assert len(old) < len(method.state_dict())
    build("triplet_surgery").load_state_dict(old)
