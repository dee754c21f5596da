"""Every config check that needs only the config is made before any data is loaded (issue 14 item 3).

The layered checks (data: name and augmentation preset for the dataset's kind; models: backbone for that
kind; methods: name, parameters, phases and each method's ``Params.check_run``) are tested here one by one;
tests/test_run_dir.py checks that the engine runs them before loading data, evaluating or creating a run
directory.
"""
from __future__ import annotations

import pytest

from siamlab import config
from siamlab.data import check_data_config
from siamlab.errors import ConfigError
from siamlab.losses.bridge import covariance_term
from siamlab.methods.checks import check_method_config
from siamlab.models.backbones import check_backbone


def cfg_of(*overrides):
    return config.load(None, list(overrides))


@pytest.mark.parametrize("overrides, words", [
    (["method.name=bridge", "method.k=7", "optim.batch_size=256"], ["method.k=7", "optim.batch_size=256", "e.g. 4"]),
    (["method.name=bridge", "method.k=0"], ["method.k=0"]),
    (["method.name=wmse", "method.w_size=96", "optim.batch_size=256", "model.proj_out=64"], ["method.w_size=96", "256"]),
    (["method.name=wmse", "method.w_size=0", "optim.batch_size=32", "model.proj_out=64"], ["method.w_size=0", "64"]),
    (["method.name=simsaim"], ["unknown method", "simsiam"]),
    (["method.name=simsiam", "method.tau=0.2"], ["method.tau", "simsiam"]),
    (["phases=[{epoch: 0, method: {name: simsiam}}, {epoch: 1, method: {name: bridge, k: 5}}]", "optim.epochs=3"],
     ["method.k=5"]),
    (["phases=[{epoch: 0, method: {name: simsiam}}, {epoch: 9, method: {name: naive}}]", "optim.epochs=3"],
     ["phases[1].epoch=9"]),
])
def test_method_checks_need_only_the_config(overrides, words):
    with pytest.raises(ConfigError) as err:
        check_method_config(cfg_of(*overrides))
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("overrides", [
    ["method.name=bridge", "method.k=8", "optim.batch_size=256"],
    ["method.name=wmse", "method.w_size=128", "optim.batch_size=256", "model.proj_out=64"],
    ["phases=[{epoch: 0, method: {name: simsiam}}, {epoch: 1, method: {name: naive}}]", "optim.epochs=3"],
    [],
])
def test_good_configs_pass_the_method_checks(overrides):
    check_method_config(cfg_of(*overrides))


def test_bridge_config_check_agrees_with_the_loss():
    """The config-time rule is the loss's own: k divides the global batch exactly when the loss accepts it."""
    import torch

    for n, k in [(256, 8), (256, 7), (12, 3), (12, 5)]:
        p = torch.randn(n, 4)
        ok_loss = True
        try:
            covariance_term(p, None, k)
        except ConfigError:
            ok_loss = False
        try:
            check_method_config(cfg_of("method.name=bridge", f"method.k={k}", f"optim.batch_size={n}"))
            ok_cfg = True
        except ConfigError:
            ok_cfg = False
        assert ok_loss == ok_cfg == (n % k == 0)


@pytest.mark.parametrize("overrides, words", [
    (["data.name=mnist"], ["unknown data.name", "fashion_mnist"]),
    (["data.name=blobs", "data.augment=zhang_a1"], ["data.augment='zhang_a1'", "vector data", "toy"]),
    (["data.name=fashion_mnist", "data.augment=toy"], ["data.augment='toy'", "image data"]),
    (["data.augment=sepia"], ["unknown data.augment", "gray"]),
])
def test_data_checks_need_only_the_config(overrides, words):
    with pytest.raises(ConfigError) as err:
        check_data_config(cfg_of(*overrides).data)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_data_check_returns_the_kind_without_loading(monkeypatch):
    import siamlab.data.registry as reg

    monkeypatch.setattr(reg, "load_dataset", lambda *a: pytest.fail("loaded data"))
    assert check_data_config(cfg_of("data.name=moons").data) == "vector"
    assert check_data_config(cfg_of("data.name=cifar100", "data.root=/nonexistent").data) == "image"


def test_backbone_checked_against_the_kind():
    check_backbone("mlp", "vector")
    check_backbone("convnet", "image")
    with pytest.raises(ConfigError, match="model.backbone='convnet'.*vector data"):
        check_backbone("convnet", "vector", " such as blobs")
    with pytest.raises(ConfigError, match="model.backbone='mlp'.*image data"):
        check_backbone("mlp", "image")


@pytest.mark.parametrize("item", ["eval.probe_lr=0", "optim.lars_eta=-1"])
def test_new_range_rules(item):
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        cfg_of(item)
