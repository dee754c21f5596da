"""Batched augmentation on the training device, with per-sample random parameters (SPEC §5).

``build_augment(data_cfg, dataset)`` returns an :class:`Augment`; ``views(x, index, n)`` makes n
augmented float32 views of a uint8 batch, ``clean(x)`` the un-augmented normalized input used for
evaluation. Presets (``PRESETS``, chosen by ``data.augment``; ``auto`` picks by dataset):

* ``zhang_a1``: ZHANG A.1 (SimSiam on CIFAR): RandomResizedCrop scale (0.2, 1) bicubic, colour
  jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2, horizontal flip p = 0.5, normalize.
* ``bridge``: BRIDGE §5.1, which follows BYOL: crop scale (0.08, 1), flip, jitter
  (0.4, 0.4, 0.2, 0.1) p = 0.8, grayscale p = 0.2, then the asymmetric part: view 1 Gaussian blur
  p = 1.0 and no solarization, view 2 blur p = 0.1 and solarization p = 0.2 (further views alternate).
* ``gray``: one-channel images (Fashion-MNIST, digits): crop scale (0.5, 1), flip, brightness and
  contrast 0.4 with p = 0.8. The crop keeps at least ~70 % of the side, because objects fill most of
  a 28 px (or 8 px) image and a scale-0.2 crop would cut most of the object away.
* ``toy``: CENTER §3.2, "samples of one class are the augmentations of one image": view 0 is the
  sample itself, every other view a random *other* sample of the same class from the dataset the
  Augment was built on (so ``index`` must index that dataset), optionally plus Gaussian noise.
* ``identity`` (every view is the clean input) and ``noise`` (clean input + Gaussian noise of std
  ``noise_std``, in normalized units for images).

Implementation choices: crop, resize and flip are one ``affine_grid`` / ``grid_sample`` over the
batch with continuous (sub-pixel) boxes; the four jitter operations use torchvision's definitions
(hue rotated in HSV) in an order drawn at random once per batch, with per-sample factors; the blur
kernel side is ~10 % of the image side (BYOL: 23 px at 224) with sigma in (0.1, 2.0) pixels;
solarization inverts pixels >= 0.5.

Randomness: unseeded (the default), parameters come from torch's global RNGs, which the engine
seeds with ``torch.manual_seed`` (and DataLoader seeds per worker). After ``manual_seed(s)`` the
Augment draws from its own generators, so its output depends only on ``s`` and the calls made;
``state_dict()`` / ``load_state_dict()`` carry that state for an exact resume. Per-sample
parameters and pixel noise are drawn on the batch's device, and no step reads a value back or selects
rows by a mask (a blur applied with probability p is computed for the batch and kept where drawn), so
making views never waits for a GPU (``tests/test_hostsync.py``); only the order of the four jitter
operations, one draw per batch, is made on the CPU. The same seed gives different views on CPU and GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import DataError, bad_value, unknown_name
from . import ops
from .dataset import ArrayDataset, channel_stats
from .toy import ClassPartners, check_toy_pool

CROP_TRIES = 10
CPU_CHUNK_PIXELS = 2**19  # pixel values per chunk of streamed views on the CPU (Augment.views_of_crops): 2 MB


@dataclass(frozen=True)
class ImageRecipe:
    """One view's random transformation, applied in BRIDGE §5.1's order: crop + resize, flip,
    colour jitter, grayscale, blur, solarize. ``jitter`` = (brightness, contrast, saturation, hue)."""

    crop_scale: tuple = (0.2, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"
    flip_p: float = 0.5
    jitter: tuple = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple = (0.1, 2.0)
    solarize_p: float = 0.0


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    kinds: tuple  # the dataset kinds it applies to
    mode: str  # "augment" (image recipes), "toy", "identity" or "noise"
    recipes: tuple = ()  # view i uses recipes[i % len(recipes)]
    noise_std: float = 0.0


ZHANG_A1 = ImageRecipe(crop_scale=(0.2, 1.0), interpolation="bicubic", jitter=(0.4, 0.4, 0.4, 0.1))
BRIDGE_VIEW1 = ImageRecipe(crop_scale=(0.08, 1.0), interpolation="bicubic", jitter=(0.4, 0.4, 0.2, 0.1),
                           blur_p=1.0, solarize_p=0.0)
BRIDGE_VIEW2 = ImageRecipe(crop_scale=(0.08, 1.0), interpolation="bicubic", jitter=(0.4, 0.4, 0.2, 0.1),
                           blur_p=0.1, solarize_p=0.2)
GRAY = ImageRecipe(crop_scale=(0.5, 1.0), jitter=(0.4, 0.4, 0.0, 0.0), gray_p=0.0)

PRESETS: dict = {p.name: p for p in [
    Preset("zhang_a1", "ZHANG A.1: crop 0.2-1, jitter 0.4/0.4/0.4/0.1 p0.8, gray p0.2, flip", ("image",), "augment",
           (ZHANG_A1,)),
    Preset("bridge", "BRIDGE §5.1 / BYOL: crop 0.08-1, asymmetric blur (1.0 / 0.1) and solarize (0 / 0.2)",
           ("image",), "augment", (BRIDGE_VIEW1, BRIDGE_VIEW2)),
    Preset("gray", "one channel: crop 0.5-1, flip, brightness/contrast 0.4 p0.8", ("image",), "augment", (GRAY,)),
    Preset("toy", "CENTER §3.2: views are other samples of the same class (+ optional noise)", ("vector",), "toy"),
    Preset("identity", "no augmentation: every view is the clean input", ("image", "vector"), "identity"),
    Preset("noise", "clean input + Gaussian noise (std 0.1 unless data.noise_std)", ("image", "vector"), "noise",
           noise_std=0.1),
]}
AUTO = {"fashion_mnist": "gray", "digits": "gray", "blobs": "toy", "moons": "toy"}


def auto_preset(dataset: ArrayDataset) -> str:
    """``data.augment=auto``: gray for one-channel images, toy for the CENTER toys, zhang_a1 for RGB."""
    if dataset.name in AUTO:
        return AUTO[dataset.name]
    if dataset.kind == "vector":
        return "noise"
    return "gray" if dataset.in_shape[0] == 1 else "zhang_a1"


class RandomSource:
    """Torch's global RNGs (``seed`` None) or private per-device generators seeded with ``seed``."""

    def __init__(self, seed: Optional[int] = None):
        self.seed = seed
        self.generators: dict = {}

    def generator(self, device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        device = torch.device(device)
        if str(device) not in self.generators:
            self.generators[str(device)] = torch.Generator(device=device).manual_seed(self.seed)
        return self.generators[str(device)]

    def rand(self, *shape, device="cpu") -> torch.Tensor:
        """Uniform [0, 1) numbers on ``device`` (per-sample parameters)."""
        return torch.rand(shape, generator=self.generator(device), device=device)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator(x.device), device=x.device, dtype=x.dtype)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "states": {d: g.get_state() for d, g in self.generators.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.generators = state["seed"], {}
        for device, s in state["states"].items():
            self.generator(device).set_state(s)


def uniform(rng: RandomSource, n: int, lo: float, hi: float, device="cpu") -> torch.Tensor:
    return lo + (hi - lo) * rng.rand(n, device=device)


def chance(rng: RandomSource, n: int, p: float, device="cpu") -> torch.Tensor:
    """Per-sample booleans, true with probability ``p``."""
    return rng.rand(n, device=device) < p


def jitter_factors(rng: RandomSource, n: int, recipe: ImageRecipe, device="cpu") -> list:
    """Per-sample (brightness, contrast, saturation, hue) factors; the neutral value where the
    jitter is not applied (probability 1 − jitter_p) or its strength is 0."""
    applied = chance(rng, n, recipe.jitter_p, device)
    out = []
    for j, strength in enumerate(recipe.jitter):
        lo, hi, neutral = (-strength, strength, 0.0) if j == 3 else (max(0.0, 1 - strength), 1 + strength, 1.0)
        out.append(torch.where(applied, uniform(rng, n, lo, hi, device), neutral))
    return out


def color_jitter(x: torch.Tensor, factors: list, order: list) -> torch.Tensor:
    """Apply brightness (0), contrast (1), saturation (2) and hue (3) in ``order``, a list of the ones
    to apply, with per-sample factors on x's device; hue keeps the exact input where its shift is 0."""
    adjust = (ops.adjust_brightness, ops.adjust_contrast, ops.adjust_saturation)
    for j in order:
        f = factors[j]
        if j < 3:
            x = adjust[j](x, f)
        elif x.shape[1] == 3:
            x = torch.where(ops.per_sample(f != 0), ops.adjust_hue(x, f), x)
    return x


def augment_images(x: torch.Tensor, recipe: ImageRecipe, size: int, rng: RandomSource) -> torch.Tensor:
    """One random view of a batch ``x`` (float, [0, 1]) as float [0, 1] images of side ``size``."""
    n, _, h, w = x.shape
    dev = x.device
    boxes = ops.crop_boxes(rng.rand(n, CROP_TRIES + 1, 2, device=dev), h, w, recipe.crop_scale, recipe.crop_ratio)
    flip = chance(rng, n, recipe.flip_p, dev)
    out = ops.resized_crop(x, ops.crop_flip_theta(boxes, flip, h, w), size, recipe.interpolation)
    return photometric(out, recipe, size, rng)


def augment_crops(x: torch.Tensor, recipe: ImageRecipe, rng: RandomSource) -> torch.Tensor:
    """One random view of a batch already cropped and resized when it was decoded (streamed data,
    :mod:`siamlab.data.feed`): the flip, then :func:`photometric`."""
    flip = chance(rng, x.shape[0], recipe.flip_p, x.device)
    return photometric(torch.where(ops.per_sample(flip), x.flip(-1), x), recipe, x.shape[-1], rng)


def photometric(out: torch.Tensor, recipe: ImageRecipe, size: int, rng: RandomSource) -> torch.Tensor:
    """The colour jitter, grayscale, blur and solarization of ``recipe`` on a cropped batch (float, [0, 1])."""
    n, c = out.shape[:2]
    dev = out.device
    if recipe.jitter_p > 0 and any(recipe.jitter):
        factors = jitter_factors(rng, n, recipe, dev)
        order = [j for j in torch.argsort(rng.rand(4)).tolist() if recipe.jitter[j] > 0]  # CPU: no device sync
        out = color_jitter(out, factors, order)
    if recipe.gray_p > 0 and c == 3:
        out = torch.where(ops.per_sample(chance(rng, n, recipe.gray_p, dev)), ops.to_grayscale(out), out)
    if recipe.blur_p > 0:
        blurred, sigma = chance(rng, n, recipe.blur_p, dev), uniform(rng, n, *recipe.blur_sigma, dev)
        soft = ops.gaussian_blur(out, sigma, ops.blur_kernel_size(size)).clamp_(0, 1)
        out = soft if recipe.blur_p >= 1 else torch.where(ops.per_sample(blurred), soft, out)
    if recipe.solarize_p > 0:
        out = torch.where(ops.per_sample(chance(rng, n, recipe.solarize_p, dev)), ops.solarize(out), out)
    return out


class Augment:
    """Makes the views of a batch (see module docstring). Build it with :func:`build_augment`."""

    def __init__(self, preset: Preset, kind: str, out_shape: tuple, mean: tuple = (), std: tuple = (),
                 noise_std: float = 0.0, pool: Optional[ArrayDataset] = None, seed: Optional[int] = None):
        self.preset, self.kind, self.out_shape = preset, kind, tuple(out_shape)
        self.mean, self.std, self.noise_std = tuple(mean), tuple(std), float(noise_std)
        self.pool = pool  # the dataset ``index`` refers to (toy preset)
        self.partners = ClassPartners(pool.y) if preset.mode == "toy" else None
        self._on_device: dict = {}
        self.rng = RandomSource(seed)

    @property
    def name(self) -> str:
        return self.preset.name

    def manual_seed(self, seed: Optional[int]) -> "Augment":
        """Use private generators seeded with ``seed`` (None: back to torch's global RNGs)."""
        self.rng = RandomSource(seed)
        return self

    def state_dict(self) -> dict:
        return self.rng.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state)

    # --- the interface -------------------------------------------------------------------------
    @torch.no_grad()
    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """Un-augmented input: vectors as float32; images in [0, 1], resized to the output side, normalized."""
        if self.kind == "vector":
            return x.float()
        return ops.normalize(ops.resize(to_unit(x), self.out_shape[-1]), *self.stats_on(x.device))

    @torch.no_grad()
    def views(self, x: torch.Tensor, index: Optional[torch.Tensor] = None, n: int = 2) -> list:
        """``n`` augmented float32 views of the batch ``x`` (on x's device)."""
        mode = self.preset.mode
        if mode == "augment":
            unit = to_unit(x)
            recipes = self.preset.recipes
            stats = self.stats_on(x.device)
            return [ops.normalize(augment_images(unit, recipes[i % len(recipes)], self.out_shape[-1], self.rng), *stats)
                    for i in range(n)]
        if mode == "toy":
            return self.toy_views(x, index, n)
        base = self.clean(x)
        if mode == "identity":
            return [base.clone() for _ in range(n)]
        return [base + self.noise_std * self.rng.randn_like(base) for _ in range(n)]

    def stream_recipes(self) -> tuple:
        """The recipes whose crops a streamed dataset makes at decode time (none: it sends clean squares)."""
        return self.preset.recipes if self.preset.mode == "augment" else ()

    @torch.no_grad()
    def views_of_crops(self, crops: torch.Tensor, index: Optional[torch.Tensor] = None, n: int = 2) -> list:
        """``n`` views of a streamed batch: uint8 ``crops`` ``[B, V, C, S, S]``, view i cropped by recipe
        ``i % len(recipes)`` when it was decoded (V = 1: clean squares, for presets without crops).

        On the CPU the batch goes through in chunks of about ``CPU_CHUNK_PIXELS`` values (3 images of 224 px,
        42 of 64 px), each with its own draws: the dozens of element-wise passes of a chunk then stay in
        the cache (a batch of 128 views of 224 px does not, and ran ~5x slower on a 2-core CPU)."""
        if self.preset.mode != "augment":
            return self.views(crops[:, 0], index, n)
        recipes, stats = self.preset.recipes, self.stats_on(crops.device)
        step = max(1, CPU_CHUNK_PIXELS // crops[0, 0].numel()) if crops.device.type == "cpu" else len(crops)
        return [torch.cat([ops.normalize(augment_crops(to_unit(part[:, i]), recipes[i % len(recipes)], self.rng), *stats)
                           for part in crops.split(step)]) for i in range(n)]

    def toy_views(self, x: torch.Tensor, index: Optional[torch.Tensor], n: int) -> list:
        if index is None:
            raise DataError("the toy augmentation needs the dataset indices of the batch; pass index to views().")
        index = index.to(x.device).long()
        pool_x = self.pool_on(x.device)
        partners = self.on_device("partners", x.device, lambda: self.partners.to(x.device))
        out = [x.to(torch.float32, copy=True)]
        for _ in range(n - 1):
            out.append(pool_x[partners.draw(index, self.rng.rand(len(index), device=x.device))])
        if self.noise_std > 0:
            out = [v + self.noise_std * self.rng.randn_like(v) for v in out]
        return out

    def on_device(self, what: str, device, make):
        """``make()``, the copy of ``what`` for ``device``, made once per device and kept."""
        key = (what, str(device))
        if key not in self._on_device:
            self._on_device[key] = make()
        return self._on_device[key]

    def pool_on(self, device) -> torch.Tensor:
        return self.on_device("pool", device, lambda: self.pool.x.to(device).float())

    def stats_on(self, device) -> tuple:
        """The normalization mean and std as ``[1, C, 1, 1]`` float32 tensors on ``device``."""
        like = torch.empty(0, device=device)
        return self.on_device("stats", device, lambda: (ops.channel_constants(self.mean, like),
                                                        ops.channel_constants(self.std, like)))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] (float input is taken to be in [0, 1] already)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def build_augment(data_cfg, dataset: ArrayDataset, noise_std: Optional[float] = None,
                  seed: Optional[int] = None) -> Augment:
    """The Augment for ``data_cfg.augment`` on ``dataset`` (the training split; its indices are what
    ``views(x, index, n)`` receives). ``noise_std``: overrides the preset's (else ``data.noise_std``
    when the config has that field). ``seed``: see :class:`RandomSource`."""
    name = data_cfg.augment if data_cfg.augment != "auto" else auto_preset(dataset)
    preset = check_preset(name, dataset.kind, dataset.name)
    if noise_std is None:
        noise_std = getattr(data_cfg, "noise_std", None)
    noise_std = preset.noise_std if noise_std is None else float(noise_std)
    if preset.mode == "toy":
        check_toy_pool(dataset)
    if dataset.kind == "vector":
        return Augment(preset, "vector", dataset.in_shape, noise_std=noise_std, pool=dataset, seed=seed)
    side = data_cfg.image_size or dataset.in_shape[-1]
    mean, std = (dataset.mean, dataset.std) if dataset.mean else channel_stats(dataset.x)
    return Augment(preset, "image", (dataset.in_shape[0], side, side), mean, std, noise_std, seed=seed)


def check_preset(name: str, kind: str, dataset_name: str) -> Preset:
    """The preset ``name`` when it applies to ``kind`` ("image" / "vector") data; else one ConfigError sentence."""
    if name not in PRESETS:
        raise unknown_name("data.augment", name, list(PRESETS) + ["auto"])
    preset = PRESETS[name]
    if kind not in preset.kinds:
        fits = [p.name for p in PRESETS.values() if kind in p.kinds]
        raise bad_value("data.augment", name, f"a preset for {kind} data such as {dataset_name} ({', '.join(fits)})")
    return preset
