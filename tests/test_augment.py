"""Batched augmentation (SPEC §5): each operation against an independent computation (PIL,
colorsys, scipy, slicing), then the presets: shapes, ranges, per-sample randomness, seeding."""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamlab.config import DataConfig
from siamlab.data import PRESETS, build_augment, load_dataset
from siamlab.data import ops
from siamlab.data.augment import ImageRecipe, RandomSource, augment_images, auto_preset, to_unit
from siamlab.data.dataset import ArrayDataset
from siamlab.data.persample import PerSampleViews
from siamlab.errors import ConfigError, DataError


def rand_images(n=4, c=3, size=12, seed=0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def to_pil(img: torch.Tensor):
    from PIL import Image

    return Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def from_pil(im) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)


def quantized(n=3, size=10, seed=1) -> torch.Tensor:
    """Images whose values are exact multiples of 1/255, so PIL sees the same input."""
    return (rand_images(n, 3, size, seed) * 255).round() / 255


# --- geometry -------------------------------------------------------------------------------------
def test_integer_box_at_its_own_size_is_exact_slicing_and_flip():
    x = rand_images(3, 3, 16)
    boxes = torch.tensor([[2.0, 3.0, 8.0, 8.0], [0.0, 0.0, 16.0, 16.0], [8.0, 5.0, 8.0, 8.0]])
    flip = torch.tensor([False, True, True])
    theta = ops.crop_flip_theta(boxes, flip, 16, 16)
    out8 = ops.resized_crop(x[[0, 2]], theta[[0, 2]], 8)
    torch.testing.assert_close(out8[0], x[0, :, 3:11, 2:10], atol=1e-6, rtol=0)
    torch.testing.assert_close(out8[1], x[2, :, 5:13, 8:16].flip(-1), atol=1e-6, rtol=0)
    full = ops.resized_crop(x[1:2], theta[1:2], 16)
    torch.testing.assert_close(full[0], x[1].flip(-1), atol=1e-6, rtol=0)


def test_whole_image_box_resizes_like_interpolate():
    x = rand_images(2, 3, 10)
    theta = ops.crop_flip_theta(torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2), torch.zeros(2, dtype=torch.bool), 10, 10)
    ref = F.interpolate(x, size=(23, 23), mode="bilinear", align_corners=False)
    torch.testing.assert_close(ops.resized_crop(x, theta, 23), ref, atol=1e-5, rtol=0)


def test_crop_boxes_respect_scale_ratio_and_bounds():
    u = torch.rand(2000, 11, 2, generator=torch.Generator().manual_seed(0))
    boxes = ops.crop_boxes(u, 20, 30, (0.2, 1.0), (3 / 4, 4 / 3))
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 30 + 1e-4).all() and (y0 + h <= 20 + 1e-4).all()
    fallback = (w == 30) & (h == 20)
    area = (w * h / 600)[~fallback]
    aspect = (w / h)[~fallback]
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 1 + 1e-5
    assert aspect.min() >= 0.75 - 1e-5 and aspect.max() <= 4 / 3 + 1e-5
    assert area.std() > 0.15 and fallback.float().mean() < 0.05  # spread out; fallback rare
    impossible = ops.crop_boxes(u[:5], 20, 30, (2.0, 3.0), (1.0, 1.0))
    assert torch.equal(impossible, torch.tensor([[0.0, 0.0, 30.0, 20.0]] * 5))


# --- colour: compared with PIL and colorsys --------------------------------------------------------
def test_grayscale_brightness_contrast_saturation_match_pil():
    from PIL import ImageEnhance

    x = quantized()
    f = torch.tensor([0.6, 1.0, 1.4])
    tol = dict(atol=1.01 / 255, rtol=0)
    for i in range(3):
        pil = to_pil(x[i])
        gray = torch.from_numpy(np.asarray(pil.convert("L"), dtype=np.float32) / 255)
        torch.testing.assert_close(ops.to_grayscale(x[i:i + 1])[0, 1], gray, **tol)
        bright = from_pil(ImageEnhance.Brightness(pil).enhance(float(f[i])))
        torch.testing.assert_close(ops.adjust_brightness(x, f)[i], bright, **tol)
        sat = from_pil(ImageEnhance.Color(pil).enhance(float(f[i])))
        torch.testing.assert_close(ops.adjust_saturation(x, f)[i], sat, atol=2.01 / 255, rtol=0)
        contrast = from_pil(ImageEnhance.Contrast(pil).enhance(float(f[i])))  # PIL rounds the mean gray
        torch.testing.assert_close(ops.adjust_contrast(x, f)[i], contrast, atol=2.01 / 255, rtol=0)


def test_hsv_conversion_matches_colorsys_and_round_trips():
    x = rand_images(2, 3, 6)
    x[0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.3])  # gray pixel: hue 0, saturation 0
    x[0, :, 0, 1] = torch.tensor([0.5, 0.5, 0.2])  # tie between red and green
    hsv = ops.rgb_to_hsv(x)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    ref = torch.tensor([colorsys.rgb_to_hsv(*p) for p in pixels]).reshape(2, 6, 6, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(hsv, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ops.hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)


def test_hue_shift_matches_colorsys():
    x = rand_images(3, 3, 5)
    shift = torch.tensor([0.1, -0.07, 0.0])
    out = ops.adjust_hue(x, shift)
    for i in range(3):
        for px in [(0, 0), (2, 3), (4, 1)]:
            h, s, v = colorsys.rgb_to_hsv(*x[i, :, px[0], px[1]].tolist())
            ref = colorsys.hsv_to_rgb((h + float(shift[i])) % 1.0, s, v)
            torch.testing.assert_close(out[i, :, px[0], px[1]], torch.tensor(ref), atol=1e-5, rtol=0)


def test_one_channel_colour_ops():
    x = rand_images(2, 1, 6)
    assert torch.equal(ops.adjust_saturation(x, torch.tensor([0.0, 2.0])), x)
    assert torch.equal(ops.adjust_hue(x, torch.tensor([0.3, 0.1])), x)
    mean = x.mean(dim=(1, 2, 3))
    expected = (0.5 * x + 0.5 * mean.view(2, 1, 1, 1)).clamp(0, 1)
    torch.testing.assert_close(ops.adjust_contrast(x, torch.tensor([0.5, 0.5])), expected)


# --- blur, solarize, normalize ----------------------------------------------------------------------
def test_gaussian_blur_matches_scipy_per_sample_sigma():
    from scipy.ndimage import correlate1d

    x = rand_images(3, 3, 11)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    out = ops.gaussian_blur(x, sigma, 5)
    d = np.arange(5) - 2
    for i in range(3):
        k = np.exp(-d ** 2 / (2 * float(sigma[i]) ** 2))
        k /= k.sum()
        ref = correlate1d(correlate1d(x[i].numpy().astype(np.float64), k, axis=2, mode="mirror"), k, axis=1, mode="mirror")
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-6)
    assert ops.blur_kernel_size(224) == 23 and ops.blur_kernel_size(32) == 3 and ops.blur_kernel_size(64) == 7
    tiny = ops.gaussian_blur(rand_images(1, 1, 2), torch.tensor([1.0]), 23)  # kernel shrinks to fit
    assert tiny.shape == (1, 1, 2, 2)


def test_solarize_and_normalize_by_hand():
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).reshape(1, 1, 1, 5)
    assert ops.solarize(x).flatten().tolist() == [0.0, 0.25, 0.5, 0.25, 0.0]
    y = ops.normalize(torch.full((1, 2, 1, 1), 0.5), (0.25, 0.5), (0.5, 0.25))
    assert y.flatten().tolist() == [0.5, 0.0]


# --- presets and the Augment ------------------------------------------------------------------------
def small(name, n=64, **kw):
    c = DataConfig(name=name, train_subset=n, **kw)
    return c, load_dataset(c, "train")


@pytest.mark.parametrize("preset", ["zhang_a1", "bridge", "gray", "identity", "noise"])
@pytest.mark.parametrize("name", ["synthetic", "digits"])
def test_image_presets_shapes_dtype_and_range(preset, name):
    c, ds = small(name, augment=preset)
    aug = build_augment(c, ds, seed=0)
    idx = torch.arange(16)
    views = aug.views(ds.x[idx], idx, 3)
    assert len(views) == 3
    for v in views:
        assert v.shape == (16, *ds.in_shape) and v.dtype == torch.float32 and torch.isfinite(v).all()
    for recipe in PRESETS[preset].recipes:  # before normalization, images stay in [0, 1]
        raw = augment_images(to_unit(ds.x[idx]), recipe, ds.x.shape[-1], RandomSource(1))
        assert raw.min() >= 0 and raw.max() <= 1 and raw.shape == (16, *ds.in_shape)


def test_views_differ_per_sample_and_per_call():
    c, ds = small("synthetic", augment="zhang_a1")
    aug = build_augment(c, ds, seed=0)
    same = ds.x[:1].expand(32, -1, -1, -1)  # one image repeated: only per-sample parameters differ
    a, b = aug.views(same, torch.zeros(32, dtype=torch.long), 2)
    flat = a.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 1e-3  # every pair of rows differs
    assert not torch.allclose(a, b)
    a2, _ = aug.views(same, torch.zeros(32, dtype=torch.long), 2)
    assert not torch.allclose(a, a2)


def test_seeded_and_global_rng_are_reproducible():
    c, ds = small("synthetic", augment="bridge")
    x, idx = ds.x[:8], torch.arange(8)
    aug = build_augment(c, ds, seed=5)
    first = aug.views(x, idx, 2)
    state = aug.state_dict()
    nxt = aug.views(x, idx, 2)
    aug.manual_seed(5)
    assert all(torch.equal(p, q) for p, q in zip(first, aug.views(x, idx, 2)))
    aug.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(nxt, aug.views(x, idx, 2)))
    unseeded = build_augment(c, ds)
    torch.manual_seed(3)
    g1 = unseeded.views(x, idx, 2)
    torch.manual_seed(3)
    assert all(torch.equal(p, q) for p, q in zip(g1, unseeded.views(x, idx, 2)))


def test_clean_is_deterministic_normalized_and_resized():
    c, ds = small("synthetic", augment="zhang_a1")
    aug = build_augment(c, ds)
    x = ds.x[:4]
    expected = (x.float() / 255 - torch.tensor(ds.mean).view(1, 3, 1, 1)) / torch.tensor(ds.std).view(1, 3, 1, 1)
    torch.testing.assert_close(aug.clean(x), expected)
    assert torch.equal(aug.clean(x), aug.clean(x))
    c16 = DataConfig(name="synthetic", train_subset=64, image_size=16)
    aug16 = build_augment(c16, ds)
    assert aug16.clean(x).shape == (4, 3, 16, 16) and aug16.views(x, None, 2)[1].shape == (4, 3, 16, 16)
    assert aug16.out_shape == (3, 16, 16)


def test_bridge_view_one_is_blurred_and_view_two_sometimes_solarized():
    c, ds = small("synthetic", n=256, augment="bridge")
    aug = build_augment(c, ds, seed=0)
    x = ds.x

    def roughness(v):  # mean absolute difference between horizontal neighbours
        return (v[..., 1:] - v[..., :-1]).abs().mean(dim=(1, 2, 3))

    v1, v2 = aug.views(x, None, 2)
    assert roughness(v1).mean() < 0.8 * roughness(v2).mean()
    plain = ImageRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)
    sol = ImageRecipe(**{**plain.__dict__, "solarize_p": 0.2})
    base = augment_images(to_unit(x), plain, 32, RandomSource(0))
    solar = augment_images(to_unit(x), sol, 32, RandomSource(0))
    changed = (solar - base).abs().flatten(1).amax(1) > 1e-6
    assert 0.1 < changed.float().mean() < 0.3  # p = 0.2 per sample
    torch.testing.assert_close(solar[changed], ops.solarize(base[changed]))


@pytest.mark.parametrize("step", ["flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"])
def test_each_random_step_is_decided_per_sample(step):
    """With only ``step`` active at p = 0.5, about half of a batch of 256 changes (not all or none)."""
    _, ds = small("synthetic", n=256)
    plain = ImageRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)
    one = ImageRecipe(**{**plain.__dict__, step: 0.5})
    unit = to_unit(ds.x)
    base = augment_images(unit, plain, 32, RandomSource(0))
    changed = (augment_images(unit, one, 32, RandomSource(0)) - base).abs().flatten(1).amax(1) > 1e-5
    assert 0.35 < changed.float().mean() < 0.65


def test_gray_preset_keeps_one_channel():
    c, ds = small("fashion_mnist" if load_ok("fashion_mnist") else "digits")
    aug = build_augment(c, ds, seed=0)
    assert aug.name == "gray"
    v = aug.views(ds.x[:8], None, 2)[0]
    assert v.shape[1] == 1


def load_ok(name) -> bool:
    try:
        load_dataset(DataConfig(name=name, train_subset=8), "train")
        return True
    except DataError:
        return False


@pytest.mark.parametrize("name", ["blobs", "moons"])
def test_toy_views_are_other_samples_of_the_same_class(name):
    c, ds = small(name, n=0, augment="toy")
    aug = build_augment(c, ds, seed=0)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:200]
    views = aug.views(ds.x[idx], idx, 4)
    assert torch.equal(views[0], ds.x[idx])  # view 0 is the sample itself
    for v in views[1:]:
        match = (v[:, None, :] == ds.x[None, :, :]).all(-1)
        assert (match.sum(1) == 1).all()  # each view is exactly one dataset sample
        partner = match.float().argmax(1)
        assert torch.equal(ds.y[partner], ds.y[idx]) and (partner != idx).all()
    assert not torch.equal(views[1], views[2])
    noisy = build_augment(c, ds, noise_std=0.05, seed=0).views(ds.x[idx], idx, 2)
    assert 0.03 < float((noisy[0] - ds.x[idx]).std()) < 0.07


def test_toy_needs_index_and_two_samples_per_class():
    c, ds = small("blobs", n=0, augment="toy")
    with pytest.raises(DataError, match="needs the dataset indices"):
        build_augment(c, ds).views(ds.x[:4], None, 2)
    lone = ArrayDataset(torch.zeros(3, 2), torch.tensor([0, 0, 1]), 2, "vector", "lone")
    with pytest.raises(DataError, match="class 1 of lone has one"):
        build_augment(DataConfig(name="blobs", augment="toy"), lone)


def test_vector_identity_and_noise():
    c, ds = small("moons", n=0, augment="identity")
    v = build_augment(c, ds).views(ds.x[:5], None, 2)
    assert torch.equal(v[0], ds.x[:5]) and torch.equal(v[1], ds.x[:5])
    c.augment = "noise"
    n = build_augment(c, ds, seed=0).views(ds.x, None, 2)
    assert float((n[0] - ds.x).std()) == pytest.approx(0.1, rel=0.1)


def test_auto_choice_and_bad_presets():
    assert auto_preset(load_dataset(DataConfig(name="blobs"), "train")) == "toy"
    assert auto_preset(load_dataset(DataConfig(name="digits", train_subset=20), "train")) == "gray"
    assert auto_preset(load_dataset(DataConfig(name="synthetic", train_subset=20), "train")) == "zhang_a1"
    _, ds = small("blobs", n=0)
    with pytest.raises(ConfigError, match="data.augment='zhang_a1' is not valid: expected a preset for vector data"):
        build_augment(DataConfig(name="blobs", augment="zhang_a1"), ds)
    with pytest.raises(ConfigError, match="unknown data.augment 'simclr'"):
        build_augment(DataConfig(name="blobs", augment="simclr"), ds)


def test_zhang_a1_preset_is_the_paper_recipe():
    r = PRESETS["zhang_a1"].recipes[0]
    assert (r.crop_scale, r.jitter, r.jitter_p, r.gray_p, r.flip_p, r.interpolation) == \
        ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, 0.5, "bicubic")
    v1, v2 = PRESETS["bridge"].recipes
    assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)


def test_per_sample_baseline_dataset():
    c, ds = small("synthetic", augment="zhang_a1")
    aug = build_augment(c, ds)
    per = PerSampleViews(ds, aug, n_views=2)
    views, i = per[7]
    assert i == 7 and len(views) == 2 and views[0].shape == ds.in_shape and views[0].dtype == torch.float32
    loader = torch.utils.data.DataLoader(per, batch_size=4)
    batch, index = next(iter(loader))
    assert batch[0].shape == (4, *ds.in_shape) and index.tolist() == [0, 1, 2, 3]
    assert math.isfinite(float(batch[1].sum()))
