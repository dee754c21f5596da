"""Shipped configs load, validate and name real methods, datasets and augmentation presets."""
from pathlib import Path

import pytest

from siamlab import config
from siamlab.data.augment import PRESETS
from siamlab.methods import build_params, get

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_is_valid(path):
    cfg = config.load(str(path))
    cls = get(cfg.method.name)
    build_params(cls.Params, cfg.method.params, cfg.method.name)
    assert cfg.data.augment == "auto" or cfg.data.augment in PRESETS


def test_overrides_are_typed_and_ranged():
    cfg = config.load(None, ["optim.epochs=3", "engine.bf16=true", "data.root=null", "method.decor_weight=0.5"])
    assert cfg.optim.epochs == 3 and cfg.engine.bf16 is True and cfg.data.root is None
    assert cfg.method.decor_weight == 0.5
    with pytest.raises(config.ConfigError, match="engine.bf16"):
        config.load(None, ["engine.bf16=maybe"])
    with pytest.raises(config.ConfigError, match="optim.momentum"):
        config.load(None, ["optim.momentum=1.5"])


def test_dump_then_load_roundtrip():
    cfg = config.load(None, ["method.name=byol", "method.momentum=0.99", "optim.lr=0.3"])
    again = config.from_dict(__import__("yaml").safe_load(config.dump(cfg)))
    assert again.to_dict() == cfg.to_dict()
