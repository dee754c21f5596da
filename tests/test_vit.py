"""The ViT backbone: torchvision's key layout (against a list made by torchvision itself), the transformer's
formulas (against a forward written out by hand), every method on it, DINO training on it, its export."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from siamlab import config
from siamlab.engine.build import method_around
from siamlab.engine.trainer import train
from siamlab.errors import SiamlabError
from siamlab.interop.export import export_run
from siamlab.interop.layouts import load_model
from siamlab.methods import available
from siamlab.models import Encoder, build_encoder, projection_mlp
from siamlab.models.vit import VisionTransformer, vit_input_shape

from test_all_methods import EXTRA
from test_export import fake_run
from test_hostsync import _syncs_in_steps, _trainer

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "torchvision_vit_layout.json").read_text())


def _vit_cfg(name: str, patch: int = 16, *extra):
    return config.load(None, [f"model.backbone={name}", f"model.patch_size={patch}", "model.proj_hidden=32",
                              "model.proj_out=16", *extra])


def _layout(sd: dict) -> dict:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()}


@pytest.mark.parametrize("name", ["vit_tiny", "vit_small"])
def test_state_dict_is_torchvisions_without_heads(name):
    enc = build_encoder(_vit_cfg(name).model, (3, 224, 224))
    want = {k: v for k, v in LAYOUT["models"][name].items() if not k.startswith("heads.")}
    got = _layout(enc.backbone.state_dict())
    assert list(got) == list(want) and got == want  # same keys, order, shapes and dtypes
    assert enc.backbone.out_dim == want["class_token"][0][2]
    params = sum(p.numel() for p in enc.backbone.parameters())
    assert params == sum(math.prod(s) for s, _ in want.values())


def test_torchvision_export_has_exactly_torchvisions_keys_and_says_how_to_build_it(tmp_path):
    run, enc = fake_run(tmp_path, "vit_tiny", in_shape=(3, 224, 224))
    res = export_run(run, "torchvision")
    sd = torch.load(res["files"][0], weights_only=True)
    assert _layout(sd) == LAYOUT["models"]["vit_tiny"] and list(sd) == list(LAYOUT["models"]["vit_tiny"])
    assert not sd["heads.head.weight"].any() and not sd["heads.head.bias"].any()
    for k, v in enc.backbone.state_dict().items():
        assert torch.equal(sd[k], v), k
    assert res["note"] == ("load it into torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=12, "
                           "num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=1000).")


def test_gray_28px_export_and_reload(tmp_path):
    """Fashion-MNIST's shape: the note tells how to swap torchvision's 3-channel conv_proj; siamlab's own
    formats rebuild the ViT from its weights alone (the image side is in the position embeddings)."""
    from siamlab.engine.runlog import atomic_save, atomic_write_text

    cfg = _vit_cfg("vit_tiny", 7, "data.name=fashion_mnist")
    enc = build_encoder(cfg.model, (1, 28, 28))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    atomic_write_text(run / "config.yaml", config.dump(cfg))
    atomic_save({"method": {f"encoder.{k}": v for k, v in enc.state_dict().items()}, "config": cfg.to_dict(), "step": 1},
                run / "checkpoints" / "last.pt")
    note = export_run(run, "torchvision", num_classes=10)["note"]
    assert note.endswith("after setting model.conv_proj = torch.nn.Conv2d(1, 192, 7, stride=7) (1-channel images).")
    assert "image_size=28, patch_size=7" in note
    path = export_run(run, "state_dict")["files"][0]
    model = load_model(path)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.backbone.eval()(x), enc.backbone.eval()(x))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scripted = torch.jit.load(export_run(run, "torchscript")["files"][0])
    assert not [w for w in caught if w.filename.endswith("vit.py")]  # the image-size check stays out of the trace
    for batch in (x, torch.rand(7, 1, 28, 28)):  # traced on a batch of 2: other batch sizes too
        with torch.no_grad():
            assert torch.allclose(scripted(batch), enc.backbone.eval()(batch), atol=1e-6)
    assert vit_input_shape(enc.backbone.state_dict()) == (1, 28, 28)
    assert vit_input_shape({"conv1.weight": torch.zeros(64, 3, 7, 7)}) is None


def reference_forward(vit: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """ViT written out from the paper's equations (Dosovitskiy et al. 2021, eq. 1-4) with explicit matmuls:
    patch embedding as unfold + matmul, pre-norm multi-head softmax attention, GELU MLP, class token out."""
    b, p, d = x.shape[0], vit.patch_size, vit.hidden_dim
    w = vit.conv_proj.weight.reshape(d, -1)
    patches = torch.nn.functional.unfold(x, p, stride=p).transpose(1, 2)  # [B, N, C*p*p], row-major patches
    z = torch.cat([vit.class_token.expand(b, -1, -1), patches @ w.T + vit.conv_proj.bias], 1) + vit.encoder.pos_embedding

    def ln(t, m):
        mu, var = t.mean(-1, keepdim=True), t.var(-1, unbiased=False, keepdim=True)
        return (t - mu) / torch.sqrt(var + m.eps) * m.weight + m.bias

    for blk in vit.encoder.layers:
        att = blk.self_attention
        heads, dh = att.num_heads, d // att.num_heads
        q, k, v = (ln(z, blk.ln_1) @ att.in_proj_weight.T + att.in_proj_bias).split(d, dim=-1)
        q, k, v = (t.reshape(b, -1, heads, dh).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1) @ v
        z = z + a.transpose(1, 2).reshape(b, -1, d) @ att.out_proj.weight.T + att.out_proj.bias
        h = ln(z, blk.ln_2) @ blk.mlp[0].weight.T + blk.mlp[0].bias
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        z = z + h @ blk.mlp[3].weight.T + blk.mlp[3].bias
    return ln(z, vit.encoder.ln)[:, 0]


@pytest.mark.parametrize("train_mode", [True, False])
def test_forward_matches_the_equations_written_out(train_mode):
    torch.manual_seed(0)
    vit = VisionTransformer(12, 4, num_layers=2, num_heads=3, hidden_dim=24, mlp_dim=48, in_channels=3).double()
    with torch.no_grad():
        for prm in vit.parameters():
            prm.add_(0.1 * torch.randn_like(prm))
    x = torch.randn(5, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        got = vit.train(train_mode)(x)
    assert torch.allclose(got, reference_forward(vit, x), atol=1e-10)


def test_torchvision_init():
    """conv_proj normal of std sqrt(1/fan_in) (truncated at ±2, far out), zero class token and conv_proj bias,
    position embeddings of std 0.02, MLP biases of std 1e-6."""
    torch.manual_seed(0)
    vit = build_encoder(_vit_cfg("vit_tiny").model, (3, 224, 224)).backbone
    w = vit.conv_proj.weight
    assert abs(w.std().item() / math.sqrt(1 / (3 * 16 * 16)) - 1) < 0.02
    assert not vit.class_token.any() and not vit.conv_proj.bias.any()
    assert abs(vit.encoder.pos_embedding.std().item() - 0.02) < 0.001
    assert vit.encoder.layers[0].mlp[0].bias.abs().max() < 1e-5


@pytest.mark.parametrize("shape, patch, message", [
    ((1, 28, 28), 16, r"model.patch_size=16 does not divide the 28 px images; choose a divisor of 28 such as 2, 4, 7, 14"),
    ((3, 32, 24), 8, r"needs square images, the data's are 32x24"),
])
def test_bad_patch_or_shape_is_one_sentence(shape, patch, message):
    with pytest.raises(SiamlabError, match=message):
        build_encoder(_vit_cfg("vit_tiny", patch).model, shape)
    vit = build_encoder(_vit_cfg("vit_tiny", 4).model, (3, 32, 32)).backbone
    with pytest.raises(SiamlabError, match="takes 32 px square images, got 28x28; set data.image_size=32"):
        vit(torch.zeros(1, 3, 28, 28))


@pytest.mark.parametrize("name", sorted(available()))
def test_every_method_steps_on_a_vit(name):
    """Methods see only the encoder; on a (2-layer) ViT each makes finite training steps and embeds."""
    cfg = _vit_cfg("vit_tiny", 4, f"method.name={name}", "model.pred_hidden=8", "optim.batch_size=32", *EXTRA.get(name, []))
    torch.manual_seed(0)
    vit = VisionTransformer(8, 4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, in_channels=1)
    proj = projection_mlp(16, 32, 16, 3, final_bn=cfg.model.proj_final_bn)
    method = method_around(cfg, Encoder(vit, proj, 16), 64, torch.device("cpu"))
    opt = torch.optim.SGD(method.parameters(), lr=0.01)
    for step in range(2):
        views = [torch.randn(32, 1, 8, 8) for _ in range(2)]
        lo = method.loss(method(views, torch.arange(32) + 32 * step))
        opt.zero_grad()
        lo.loss.backward()
        opt.step()
        method.after_step(step, 2)
        assert math.isfinite(lo.loss.item()), name
    assert vit.conv_proj.weight.grad is not None and vit.conv_proj.weight.grad.abs().sum() > 0
    feats = method.eval().embed(torch.randn(4, 1, 8, 8))
    assert feats["backbone"].shape == (4, 16) and torch.isfinite(feats["backbone"]).all()


def test_dino_trains_a_vit_tiny_through_the_engine(tmp_path):
    cfg = config.load(None, ["method.name=dino", "method.out_dim=64", "model.backbone=vit_tiny", "model.patch_size=8",
                             "model.proj_hidden=64", "model.proj_out=32", "data.name=synthetic", "data.train_subset=128",
                             "data.test_subset=64", "optim.name=adamw", "optim.lr=0.0005", "optim.weight_decay=0.04",
                             "optim.batch_size=32", "optim.epochs=1", "diag.every_steps=2", "eval.knn_k=10",
                             "engine.progress=false", "engine.threads=1", f"engine.out={tmp_path}", "engine.run_name=dino"])
    res = train(cfg)
    assert res.summary["status"] == "completed", res.summary["message"]
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in recs if r["kind"] == "train")
    assert any(r["kind"] == "diag" for r in recs) and 0 <= res.summary["final"]["knn_backbone"] <= 100
    state = torch.load(res.run_dir / "checkpoints" / "last.pt", weights_only=True)["method"]
    start = build_encoder(cfg.model, (3, 32, 32))
    assert state["encoder.backbone.encoder.pos_embedding"].shape == (1, 17, 192)
    assert not torch.equal(state["encoder.backbone.conv_proj.weight"], start.backbone.conv_proj.weight)


def test_a_vit_step_does_not_synchronize(tmp_path):
    trainer = _trainer(tmp_path, "dino", "rgb", ["model.backbone=vit_tiny", "model.patch_size=8", "method.out_dim=32"])
    check = _syncs_in_steps(trainer)
    assert not check.found, check.report()
