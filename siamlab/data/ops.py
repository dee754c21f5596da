"""Batched image operations with one parameter per sample (pure functions, any device).

Images are float tensors ``[B, C, H, W]`` with values in [0, 1]; ``C`` is 1 or 3. Per-sample
parameters are 1-D tensors of length B. The colour operations follow the definitions of
torchvision's functional transforms (blend with black / the mean gray / the gray image, hue
rotation in HSV), so a preset means what it means in ZHANG A.1 and BRIDGE §5.1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL / torchvision grayscale


def per_sample(v: torch.Tensor) -> torch.Tensor:
    """A length-B parameter shaped to broadcast over ``[B, C, H, W]``."""
    return v.reshape(-1, 1, 1, 1)


# --- geometry -----------------------------------------------------------------------------------
def crop_boxes(u: torch.Tensor, height: int, width: int, scale: tuple, ratio: tuple) -> torch.Tensor:
    """RandomResizedCrop boxes ``[B, 4]`` = (x0, y0, w, h) in pixels, from uniforms ``u`` ``[B, T, 2] + [B, 2]``.

    ``u`` is ``[B, T + 1, 2]``: T candidate (area, log-ratio) pairs, then the (x, y) offset pair.
    A candidate has area ``scale``·H·W and aspect ``ratio`` (log-uniform); the first one that fits
    is used, the whole image when none does. Boxes are continuous (sub-pixel), not rounded.
    """
    cand, offset = u[:, :-1], u[:, -1]
    area = height * width * (scale[0] + (scale[1] - scale[0]) * cand[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * cand[..., 1])
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), torch.full_like(any_fit, width, dtype=w.dtype))
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), torch.full_like(any_fit, height, dtype=h.dtype))
    x0, y0 = offset[:, 0] * (width - w), offset[:, 1] * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def crop_flip_theta(boxes: torch.Tensor, flip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Affine matrices ``[B, 2, 3]`` for ``affine_grid`` (align_corners=False) mapping the output onto
    each box, mirrored horizontally where ``flip`` is true."""
    x0, y0, w, h = boxes.unbind(1)
    sign = 1.0 - 2.0 * flip.to(boxes.dtype)
    theta = torch.zeros(len(boxes), 2, 3, dtype=boxes.dtype, device=boxes.device)
    theta[:, 0, 0] = sign * w / width
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    return theta


def resized_crop(x: torch.Tensor, theta: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop + resize + flip of the whole batch in one ``grid_sample`` (edges clamp to the border)."""
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], x.shape[1], size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0) if mode == "bicubic" else out


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Deterministic resize to ``size`` x ``size`` (bilinear, antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


# --- colour -------------------------------------------------------------------------------------
def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``[B, 1, H, W]`` (the image itself when it has one channel)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.split(1, dim=1)
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b  # Python weights: no host-to-device copy


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with black: f·x, clamped."""
    return (x * per_sample(f)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the mean gray level of each image: f·x + (1 − f)·mean(gray(x)), clamped."""
    mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
    f = per_sample(f)
    return (f * x + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the gray image: f·x + (1 − f)·gray(x), clamped (no-op on one channel)."""
    if x.shape[1] == 1:
        return x
    f = per_sample(f)
    return (f * x + (1 - f) * gray(x)).clamp_(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """HSV with all three components in [0, 1] (hue as a fraction of a turn; 0 for gray pixels).

    With v = the largest channel (the first of ties in r, g, b order) and C = v − min:
    hue = ((g − b)/C mod 6, (b − r)/C + 2, (r − g)/C + 4)[largest] / 6, s = C / v.
    """
    r, g, b = x.unbind(1)
    v = torch.maximum(torch.maximum(r, g), b)  # elementwise: much faster than a reduction over dim 1
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    num = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * chroma, r - g + 4 * chroma))
    h = num / (6 * chroma.clamp_min(1e-12)) % 1.0
    h = torch.where(chroma > 0, h, torch.zeros_like(h))
    s = chroma / v.clamp_min(1e-12)
    return torch.stack([h, s, v], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv` via the piecewise-linear channel formula
    c(n) = v − v·s·clamp(min(k, 4 − k), 0, 1) with k = (n + 6h) mod 6, n = 5, 3, 1 for r, g, b."""
    h, s, v = hsv.unbind(1)
    six_h = 6 * h.unsqueeze(1)
    k = torch.cat([(n + six_h) % 6 for n in (5.0, 3.0, 1.0)], dim=1)  # n as Python numbers: no host copy
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in [−0.5, 0.5]) in HSV (no-op on one channel)."""
    if x.shape[1] == 1:
        return x
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, :1] + per_sample(shift)) % 1.0
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1)).clamp_(0, 1)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Gray image with the input's number of channels."""
    return gray(x).expand_as(x)


# --- filters ------------------------------------------------------------------------------------
def blur_kernel_size(size: int) -> int:
    """Odd kernel side ≈ 10 % of the image side, at least 3 (BYOL: 23 px for 224 px images)."""
    k = max(3, int(round(0.1 * size)))
    return k if k % 2 == 1 else k + 1


def gaussian_kernels(sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Normalized 1-D Gaussian kernels ``[B, k]``, one per sigma."""
    d = torch.arange(k, dtype=sigma.dtype, device=sigma.device) - (k - 1) / 2
    w = torch.exp(-(d[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return w / w.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` (grouped convolutions, reflect padding).

    The kernel side is ``k``, shrunk when the image is too small to reflect-pad by ``k // 2``.
    """
    b, c, hgt, wid = x.shape
    pad = min(k // 2, hgt - 1, wid - 1)
    weight = gaussian_kernels(sigma.to(x.dtype), 2 * pad + 1).repeat_interleave(c, dim=0)  # [B*C, k]
    flat = F.pad(x.reshape(1, b * c, hgt, wid), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, weight[:, None, None, :], groups=b * c)
    flat = F.conv2d(flat, weight[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, hgt, wid)


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``."""
    return torch.where(x >= threshold, 1.0 - x, x)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x − mean) / std per channel; ``mean`` / ``std`` are sequences or tensors of one value per channel
    (a sequence is copied to x's device on every call: pass :func:`channel_constants` in a loop)."""
    m, s = channel_constants(mean, x), channel_constants(std, x)
    return (x - m) / s


def channel_constants(values, like: torch.Tensor) -> torch.Tensor:
    """``values`` (one per channel) as a ``[1, C, 1, 1]`` tensor with the dtype and device of ``like``."""
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)
