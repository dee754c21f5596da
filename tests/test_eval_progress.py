"""`siamlab eval` shows progress while it embeds and fits the probes (issue 14 item 6); the bars change
no number and stay off unless asked for."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from siamlab.config import EvalConfig
from siamlab.eval import evaluate, extract_features, linear_probe


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def embed(self, x):
        return {"backbone": x, "projector": self.lin(x)}


def toy(n=300):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.eye(4)[y] * 3 + 0.3 * torch.randn(n, 4, generator=g)
    return SimpleNamespace(x=x, y=y, num_classes=3, name="toy")


IDENTITY = SimpleNamespace(clean=lambda x: x)


@pytest.fixture(autouse=True)
def every_update_drawn(monkeypatch):
    from siamlab.eval import features

    monkeypatch.setattr(features, "PROGRESS_REDRAW_S", 0.0)  # else a bar redraws at most every 0.1 s


def test_embedding_shows_a_bar_only_when_asked(capsys):
    ds = toy()
    quiet = extract_features(Embed(), ds, IDENTITY, batch_size=64)
    assert capsys.readouterr().err == ""
    torch.manual_seed(0)
    shown = extract_features(Embed(), ds, IDENTITY, batch_size=64, progress="trained: embedding the train split")
    err = capsys.readouterr().err
    assert "trained: embedding the train split" in err and "256/300" in err and "img" in err, err
    assert quiet["backbone"].equal(shown["backbone"])


def test_evaluate_labels_both_splits_and_hands_back_train_features(capsys):
    ds, got, m = toy(), {}, Embed()
    res = evaluate(m, ds, toy(90), IDENTITY, EvalConfig(knn_k=5), batch_size=64, progress="random init",
                   on_train_features=got.update)
    err = capsys.readouterr().err
    assert "random init: embedding the train split" in err and "random init: embedding the test split" in err
    assert set(got) == {"backbone", "projector"} and got["backbone"].shape == (300, 4)
    assert res == evaluate(m, ds, toy(90), IDENTITY, EvalConfig(knn_k=5), batch_size=64)  # no bar, same numbers
    assert capsys.readouterr().err == ""


def test_linear_probe_shows_epochs_and_loss(capsys):
    ds, te = toy(), toy(60)
    quiet = linear_probe(ds.x, ds.y, te.x, te.y, 3, epochs=4)
    assert capsys.readouterr().err == ""
    shown = linear_probe(ds.x, ds.y, te.x, te.y, 3, epochs=4, progress="trained: linear probe")
    err = capsys.readouterr().err
    assert "trained: linear probe" in err and "3/4" in err and "loss=" in err, err
    assert quiet == shown
