"""Decoding one image file with PIL: the clean square of evaluation and the random crops of training.

Both read from a path or from bytes (a sample of a tar shard), refuse an image larger than
``data.max_image_pixels`` (PIL's decompression-bomb guard, made a documented setting) and turn every
decoding failure into one :class:`~siamlab.errors.DataError` sentence that names the file.

:func:`random_crop` is torchvision's RandomResizedCrop done at decode time, in a DataLoader worker:
the box is drawn with :func:`siamlab.data.ops.crop_boxes` (the distribution of the in-memory path)
from a generator seeded by (seed, epoch, sample index), so the crop of a sample does not depend on
which worker decodes it, on the number of workers or on where a resumed run restarted. JPEG files are
decoded at the smallest DCT scale (``Image.draft``) that still covers the crop at the output size.
"""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from typing import Optional, Union

import numpy as np
import torch

from ..errors import DataError
from . import ops
from .augment import CROP_TRIES

Source = Union[str, bytes]  # a file path, or the bytes of a file (a tar-shard sample)
PIL_DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS (a 0.25 GiB 24-bit image)
CORRUPT_FIX = "delete or replace it, or set data.on_corrupt=skip to skip unreadable files and count them"
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)  # what PIL raises on a file it cannot decode


def _resample(interpolation: str):
    from PIL import Image

    return {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[interpolation]


@contextmanager
def open_rgb(source: Source, name: str, max_pixels: int, draft_size=None):
    """The image at ``source`` as a PIL RGB image (``name``: how errors call the file).

    Larger than ``max_pixels`` (width x height, read from the header before decoding): DataError.
    ``draft_size``: a callable (width, height) -> the smallest (w, h) the decoded image needs (JPEG only).
    """
    from PIL import Image

    if max_pixels > (Image.MAX_IMAGE_PIXELS or max_pixels):
        Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's own guard would refuse what the user allowed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, at our limit
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        with img:
            w, h = img.size
            if w * h > max_pixels:
                raise DataError(f"image {name!r} has {w}x{h} = {w * h:,} pixels, more than data.max_image_pixels="
                                f"{max_pixels:,} (a guard against decompression bombs); raise data.max_image_pixels "
                                f"if you trust the file, or remove it.")
            if draft_size is not None:
                img.draft("RGB", draft_size(w, h))  # JPEG: decode at a reduced scale when the crop allows it
            yield img.convert("RGB"), (w, h)
    except Image.DecompressionBombError as e:
        raise DataError(f"image {name!r} is larger than PIL's decompression-bomb limit ({e}); raise "
                        "data.max_image_pixels if you trust the file, or remove it.") from None
    except DECODE_ERRORS as e:  # UnidentifiedImageError is an OSError
        raise DataError(f"image {name!r} cannot be decoded ({type(e).__name__}); {CORRUPT_FIX}.") from None


def decode_error(source: Source) -> Optional[str]:
    """Why the image at ``source`` cannot be decoded (the exception's name), or None when it decodes. JPEGs are
    decoded at their smallest DCT scale; an image over PIL's pixel limit is judged by its header alone (training
    refuses or reads it by ``data.max_image_pixels``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        with img:
            if img.size[0] * img.size[1] <= PIL_DEFAULT_MAX_PIXELS:
                img.draft("RGB", (1, 1))
                img.load()
    except Image.DecompressionBombError:
        return None
    except DECODE_ERRORS as e:  # UnidentifiedImageError is an OSError
        return type(e).__name__
    return None


def load_square(source: Source, size: int, name: str = "", max_pixels: int = PIL_DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 ``[size, size, 3]``: short side resized to ``size`` (bicubic), then a center crop."""
    from PIL import Image

    with open_rgb(source, name or str(source), max_pixels, lambda w, h: (size, size)) as (img, _):
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of sample ``index``'s random crops in ``epoch`` (well mixed by numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def crop_boxes_for(recipes: list, n_views: int, width: int, height: int, g: torch.Generator) -> torch.Tensor:
    """RandomResizedCrop boxes ``[n_views, 4]`` (x0, y0, w, h) in pixels; view i follows ``recipes[i % len]``."""
    u = torch.rand(n_views, CROP_TRIES + 1, 2, generator=g, dtype=torch.float64)
    return torch.cat([ops.crop_boxes(u[i:i + 1], height, width, recipes[i % len(recipes)].crop_scale,
                                     recipes[i % len(recipes)].crop_ratio) for i in range(n_views)])


def random_crops(source: Source, size: int, recipes: list, n_views: int, g: torch.Generator, name: str = "",
                 max_pixels: int = PIL_DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``n_views`` RandomResizedCrops of one image as uint8 ``[n_views, size, size, 3]`` (no flip: the device does it)."""
    drawn = {}

    def draft(w, h):  # the boxes are drawn on the full-size image; the draft must keep each >= size pixels
        drawn["boxes"] = boxes = crop_boxes_for(recipes, n_views, w, h, g)
        shrink = float((boxes[:, 2:] / size).min().clamp_min(1.0))
        return max(1, int(w / shrink)), max(1, int(h / shrink))

    with open_rgb(source, name or str(source), max_pixels, draft) as (img, (w0, h0)):
        sx, sy = img.size[0] / w0, img.size[1] / h0  # the draft's reduction (1 without one)
        out = np.empty((n_views, size, size, 3), np.uint8)
        for i, (x0, y0, bw, bh) in enumerate(drawn["boxes"].tolist()):
            box = (x0 * sx, y0 * sy, (x0 + bw) * sx, (y0 + bh) * sy)
            resample = _resample(recipes[i % len(recipes)].interpolation)
            out[i] = np.asarray(img.resize((size, size), resample, box=box), dtype=np.uint8)
        return out
