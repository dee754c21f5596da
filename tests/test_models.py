"""Backbones, projector and predictor zoo, each checked against an independent computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamlab.config import ModelConfig
from siamlab.errors import ConfigError, DataError
from siamlab.methods.base import Method
from siamlab.models import PREDICTORS, build_encoder, build_predictor, projection_mlp
from siamlab.models.backbones import build_backbone
from siamlab.models.resnet import resnet18, resnet50
from siamlab.models.small import ConvNet, MLPBackbone

torch.manual_seed(0)


# --- ResNet: torchvision compatibility ---------------------------------------------------------

# Keys of torchvision.models.resnet18().state_dict() (written down from torchvision's naming, fc removed).
TORCHVISION_RESNET18_KEYS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv2.weight", "layer1.0.bn2.running_var",
    "layer1.1.conv2.weight", "layer2.0.conv1.weight", "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias", "layer2.0.downsample.1.running_mean",
    "layer2.0.downsample.1.running_var", "layer2.0.downsample.1.num_batches_tracked",
    "layer3.1.bn2.bias", "layer4.0.downsample.0.weight", "layer4.1.conv2.weight", "layer4.1.bn2.num_batches_tracked",
]
TORCHVISION_RESNET18_SHAPES = {
    "conv1.weight": (64, 3, 7, 7), "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer4.1.conv2.weight": (512, 512, 3, 3),
}
TORCHVISION_RESNET50_SHAPES = {
    "layer1.0.conv1.weight": (64, 64, 1, 1), "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer3.5.bn3.weight": (1024,),
    "layer4.2.conv2.weight": (512, 512, 3, 3), "layer4.0.downsample.1.running_mean": (2048,),
}


def analytic_resnet_params(bottleneck: bool, blocks: tuple, in_ch: int = 3, stem_kernel: int = 7) -> int:
    """Parameter count from the architecture's definition: conv k*k*cin*cout, BN 2*c."""
    total = stem_kernel * stem_kernel * in_ch * 64 + 2 * 64
    cin = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        cout = planes * (4 if bottleneck else 1)
        for j in range(n):
            if bottleneck:
                total += cin * planes + planes * planes * 9 + planes * cout + 2 * (2 * planes + cout)
            else:
                total += cin * planes * 9 + planes * planes * 9 + 2 * 2 * planes
            if j == 0 and (i > 0 or cin != cout):
                total += cin * cout + 2 * cout
            cin = cout
    return total


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet_param_counts_match_hand_derived_values():
    # resnet18 by hand: stem 9,408+128; layer1 147,968; layer2 525,568; layer3 2,099,712; layer4 8,393,728.
    assert analytic_resnet_params(False, (2, 2, 2, 2)) == 11_176_512
    assert analytic_resnet_params(False, (2, 2, 2, 2)) + 512 * 1000 + 1000 == 11_689_512  # torchvision, with fc
    assert analytic_resnet_params(True, (3, 4, 6, 3)) + 2048 * 1000 + 1000 == 25_557_032  # torchvision resnet50
    assert n_params(resnet18()) == 11_176_512
    assert n_params(resnet50()) == 25_557_032 - 2_049_000
    assert n_params(resnet18(stem="cifar", in_channels=1)) == analytic_resnet_params(False, (2, 2, 2, 2), 1, 3)


def test_resnet18_state_dict_keys_are_torchvision_keys():
    sd = resnet18().state_dict()
    for k in TORCHVISION_RESNET18_KEYS:
        assert k in sd, k
    for k, shape in TORCHVISION_RESNET18_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    # 62 parameters with fc - 2 + 3 buffers for each of the 20 BNs; no fc.* keys (fc is Identity).
    assert len(sd) == 60 + 60
    assert not any(k.startswith("fc.") for k in sd)
    assert "layer1.0.downsample.0.weight" not in sd and "layer4.2.conv1.weight" not in sd


def test_resnet50_state_dict_keys_are_torchvision_keys():
    sd = resnet50().state_dict()
    for k, shape in TORCHVISION_RESNET50_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert "layer3.6.conv1.weight" not in sd and "layer1.1.downsample.0.weight" not in sd


def _bn(x, sd, pre):
    return F.batch_norm(x, sd[pre + ".running_mean"], sd[pre + ".running_var"], sd[pre + ".weight"],
                        sd[pre + ".bias"], training=False, eps=1e-5)


def _functional_resnet(x, sd, bottleneck: bool, blocks: tuple, cifar: bool):
    """torchvision's forward re-written with torch.nn.functional, reading weights by torchvision key names."""
    x = F.conv2d(x, sd["conv1.weight"], stride=1 if cifar else 2, padding=1 if cifar else 3)
    x = F.relu(_bn(x, sd, "bn1"))
    if not cifar:
        x = F.max_pool2d(x, 3, 2, 1)
    for i, n in enumerate(blocks):
        for j in range(n):
            pre, stride = f"layer{i + 1}.{j}", (2 if i > 0 and j == 0 else 1)
            short = x
            if pre + ".downsample.0.weight" in sd:
                short = _bn(F.conv2d(x, sd[pre + ".downsample.0.weight"], stride=stride), sd, pre + ".downsample.1")
            if bottleneck:  # v1.5: stride on the 3x3 conv
                y = F.relu(_bn(F.conv2d(x, sd[pre + ".conv1.weight"]), sd, pre + ".bn1"))
                y = F.relu(_bn(F.conv2d(y, sd[pre + ".conv2.weight"], stride=stride, padding=1), sd, pre + ".bn2"))
                y = _bn(F.conv2d(y, sd[pre + ".conv3.weight"]), sd, pre + ".bn3")
            else:
                y = F.relu(_bn(F.conv2d(x, sd[pre + ".conv1.weight"], stride=stride, padding=1), sd, pre + ".bn1"))
                y = _bn(F.conv2d(y, sd[pre + ".conv2.weight"], padding=1), sd, pre + ".bn2")
            x = F.relu(y + short)
    return x.mean(dim=(2, 3))


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g) * 0.1
            m.running_mean = torch.randn(c, generator=g) * 0.1
            m.running_var = torch.rand(c, generator=g) + 0.5


@pytest.mark.parametrize("make,bottleneck,blocks,stem,size", [
    (resnet18, False, (2, 2, 2, 2), "imagenet", 40),
    (resnet18, False, (2, 2, 2, 2), "cifar", 16),
    (resnet50, True, (3, 4, 6, 3), "imagenet", 32),
])
def test_resnet_forward_matches_functional_torchvision_forward(make, bottleneck, blocks, stem, size):
    model = make(stem=stem).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want = _functional_resnet(x, model.state_dict(), bottleneck, blocks, stem == "cifar")
        got = model(x)
    assert got.shape == (2, model.out_dim)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_zero_init_residual_zeroes_last_bn_and_blocks_start_as_identity():
    r18, r50 = resnet18(zero_init_residual=True), resnet50(zero_init_residual=True)
    for blk in r18.modules():
        if type(blk).__name__ == "BasicBlock":
            assert torch.all(blk.bn2.weight == 0) and torch.all(blk.bn1.weight == 1)
    for blk in r50.modules():
        if type(blk).__name__ == "Bottleneck":
            assert torch.all(blk.bn3.weight == 0) and torch.all(blk.bn2.weight == 1)
    x = torch.rand(4, 64, 8, 8)  # non-negative: relu(x + 0) == x
    torch.testing.assert_close(r18.layer1[1](x), x)
    assert all(torch.all(b.bn2.weight == 1) for b in resnet18(zero_init_residual=False).layer1)


# --- small backbones and build_backbone ---------------------------------------------------------

@pytest.mark.parametrize("backbone", ["convnet", "resnet18", "resnet50"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 72, 72)])
def test_image_backbone_shapes(backbone, shape):
    m = build_backbone(ModelConfig(backbone=backbone, width=8), shape)
    out = m(torch.randn(2, *shape))
    want = {"convnet": 64, "resnet18": 512, "resnet50": 2048}[backbone]
    assert m.out_dim == want and out.shape == (2, want)


@pytest.mark.parametrize("stem,kernel", [("cifar", 3), ("imagenet", 7)])
@pytest.mark.parametrize("channels", [1, 3])
def test_explicit_stems_and_channels(stem, kernel, channels):
    for backbone in ("convnet", "resnet18"):
        m = build_backbone(ModelConfig(backbone=backbone, stem=stem, width=4), (channels, 32, 32))
        conv1 = next(x for x in m.modules() if isinstance(x, nn.Conv2d))
        assert conv1.kernel_size == (kernel, kernel) and conv1.in_channels == channels
        assert m(torch.randn(2, channels, 32, 32)).shape == (2, m.out_dim)


def test_auto_stem_switches_above_64_px():
    def first_kernel(px):
        m = build_backbone(ModelConfig(backbone="resnet18", stem="auto"), (3, px, px))
        return m.conv1.kernel_size[0], isinstance(m.maxpool, nn.MaxPool2d)
    assert first_kernel(64) == (3, False)
    assert first_kernel(65) == (7, True)


def test_convnet_widths_and_mlp_backbone():
    m = ConvNet(in_channels=1, width=5)
    convs = [x.out_channels for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert convs == [5, 10, 20, 40] and m.out_dim == 40
    mlp = build_backbone(ModelConfig(backbone="mlp", width=12), (7,))
    assert isinstance(mlp, MLPBackbone) and mlp.out_dim == 12
    out = mlp(torch.randn(6, 7))
    assert out.shape == (6, 12) and torch.all(out >= 0)


def test_backbone_data_kind_mismatch_raises_config_error():
    with pytest.raises(ConfigError, match="model.backbone"):
        build_backbone(ModelConfig(backbone="resnet18"), (10,))
    with pytest.raises(ConfigError, match="model.backbone"):
        build_backbone(ModelConfig(backbone="mlp"), (3, 32, 32))
    with pytest.raises(ConfigError, match="model.stem"):
        build_backbone(ModelConfig(backbone="convnet", stem="big"), (3, 32, 32))
    with pytest.raises(DataError):
        build_backbone(ModelConfig(backbone="convnet"), (32, 32))


def test_build_encoder_returns_h_and_z():
    cfg = ModelConfig(backbone="mlp", width=16, proj_hidden=20, proj_out=12, proj_layers=2)
    enc = build_encoder(cfg, (5,))
    h, z = enc(torch.randn(8, 5))
    assert h.shape == (8, 16) and z.shape == (8, 12) and enc.out_dim == 12


# --- projector ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layers,kinds", [
    (3, ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]),
    (2, ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]),
    (1, ["Linear", "BatchNorm1d"]),
])
def test_projector_structure(layers, kinds):
    proj = projection_mlp(6, 10, 4, layers)
    assert [type(m).__name__ for m in proj] == kinds
    linears = [m for m in proj if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 6 and linears[-1].out_features == 4
    assert all(m.out_features == 10 for m in linears[:-1])
    assert proj.final_bn is proj[-1] and not proj.final_bn.affine


def test_projector_pre_bn_and_final_bn_standardize_the_batch():
    proj = projection_mlp(6, 10, 4, 3).train()
    h = torch.randn(32, 6)
    pre = proj.pre_bn(h)
    manual = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + 1e-5)
    out = proj(h)
    torch.testing.assert_close(out, manual, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-5, rtol=0)


def test_projector_rejects_bad_layer_count():
    with pytest.raises(ConfigError, match="model.proj_layers"):
        projection_mlp(4, 4, 4, 4)


# --- predictor zoo ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", PREDICTORS)
@pytest.mark.parametrize("normalize", [False, True])
def test_every_predictor_maps_dim_to_dim(kind, normalize):
    pred = build_predictor(kind, 8, 3, normalize_input=normalize)
    assert pred(torch.randn(5, 8)).shape == (5, 8)


def test_unknown_predictor_raises_config_error():
    with pytest.raises(ConfigError, match="method.predictor"):
        build_predictor("deep", 8, 4)


def test_mlp_predictor_is_fc_bn_relu_fc_and_exposes_last_bias():
    pred = build_predictor("mlp", 8, 3)
    assert [type(m).__name__ for m in pred.net] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert pred.net[0].out_features == 3 and pred.net[3].out_features == 8
    assert pred.last_bias is pred.net[3].bias and pred.linear_weight is None


@pytest.mark.parametrize("kind,has_bias", [("linear", False), ("linear_bias", True), ("fc_fc_bias", True),
                                           ("tanh_fc", False)])
def test_linear_weight_reproduces_the_predictor(kind, has_bias):
    pred = build_predictor(kind, 6, 4)
    if has_bias:
        pred.last_bias.data.normal_()
    z = torch.randn(5, 6)
    W = pred.linear_weight
    assert W.shape == (6, 6) and W.requires_grad
    b = pred.last_bias if has_bias else torch.zeros(6)
    assert (pred.last_bias is not None) == has_bias
    want = torch.stack([W @ z_i for z_i in z]) + b
    torch.testing.assert_close(pred(z), want)


def test_fc_fc_bias_weight_is_w2_w1():
    pred = build_predictor("fc_fc_bias", 6, 4)
    w1, w2 = pred.net[0].weight, pred.net[1].weight
    assert pred.net[0].bias is None and w1.shape == (4, 6) and w2.shape == (6, 4)
    v = torch.randn(6)
    torch.testing.assert_close(pred.linear_weight @ v, w2 @ (w1 @ v))


def test_tanh_fc_post_step_applies_tanh_once_per_after_step():
    pred = build_predictor("tanh_fc", 6, 4)
    pred.net.weight.data.mul_(5.0)  # large enough that tanh visibly changes it
    w0 = pred.net.weight.detach().clone()
    method = Method(encoder=nn.Identity(), params=None)
    method.predictor = pred
    method.after_step(0, 10)
    torch.testing.assert_close(pred.net.weight.detach(), torch.tanh(w0))
    method.after_step(1, 10)
    torch.testing.assert_close(pred.net.weight.detach(), torch.tanh(torch.tanh(w0)))
    assert not torch.allclose(torch.tanh(w0), w0)


def test_bias_predictor_is_z_plus_b():
    pred = build_predictor("bias", 5, 3)
    assert torch.all(pred.last_bias == 0) and pred.linear_weight is None
    b = torch.randn(5)
    pred.last_bias.data.copy_(b)
    z = torch.randn(4, 5)
    torch.testing.assert_close(pred(z), z + b.unsqueeze(0).expand(4, 5))


def test_identity_predictor():
    pred = build_predictor("identity", 5, 3)
    z = torch.randn(4, 5)
    assert torch.equal(pred(z), z) and pred.last_bias is None and pred.linear_weight is None
    assert n_params(pred) == 0


def test_normalize_input_divides_rows_by_their_norm():
    z = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])
    out = build_predictor("identity", 3, 2, normalize_input=True)(z)
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, -1.0]]))
    lin = build_predictor("linear_bias", 3, 2, normalize_input=True)
    torch.testing.assert_close(lin(z), lin(z * torch.tensor([[7.0], [0.5]])))  # scale-invariant per row


def test_normalize_input_gradient_matches_finite_differences():
    pred = build_predictor("linear_bias", 4, 2, normalize_input=True).double()
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pred, (z,))
