"""Streamed image folder vs a per-sample torchvision-style DataLoader pipeline: images/s (README "Data").

Setting: a generated folder of ``--n`` JPEGs (default 20,000 of 256 px on the short side, 10 classes;
written once and kept under /tmp), views of ``--size`` px (default 224, ImageNet's), the ``zhang_a1``
preset (ZHANG A.1), 2 views per image, batches of ``--batch``, ``--workers`` DataLoader processes for
both paths. Both turn the same files into 2 normalized float views per image:

* streaming (siamlab): :class:`siamlab.data.feed.StreamFeed` - workers decode (at a reduced JPEG scale
  when every crop allows it) and apply RandomResizedCrop at decode time, sending uint8 crops; flip,
  colour jitter and grayscale then run batched (``Augment.views_of_crops``) in the training process;
* per-sample (the torchvision way, written with PIL and torch because torchvision does not import
  beside this torch): each worker, per image and view, decodes the whole file, crops and resizes it
  (RandomResizedCrop with PIL), flips, converts to float and applies colour jitter, grayscale and
  normalization to that one image (siamlab's ops on a batch of one); collate stacks float views.

Blocks of ``--batches`` batches alternate between the two (after one warm-up batch each), so that
drift on a shared machine hits both. It also prints the in-memory path's training throughput on the
main job's defaults (siamlab/config.py), which streaming leaves unchanged.

    python benchmarks/bench_stream.py                  # 20,000 files (generated once: a few minutes)
    python benchmarks/bench_stream.py --n 2000 --batches 2 --blocks 1    # quick
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Batches, build_trainer, header, set_threads, time_train_steps, views_per_s

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from siamlab import config
from siamlab.data import build_augment, load_dataset, ops
from siamlab.data.augment import RandomSource, augment_crops
from siamlab.data.decode import crop_boxes_for
from siamlab.data.feed import StreamFeed
from siamlab.data.order import epoch_order
from siamlab.data.stream import for_device, training_threads

CLASSES = 10


def jpeg_folder(n: int, side: int) -> Path:
    """``n`` JPEGs (smooth random colour fields + noise, short side ``side``, aspect up to 4:3), cached."""
    from PIL import Image
    from tqdm import tqdm

    root = Path(tempfile.gettempdir()) / f"siamlab-bench-jpeg-{n}-{side}"
    if (root / "complete").exists():
        return root
    rng = np.random.default_rng(0)
    for i in tqdm(range(n), desc=f"writing {n} JPEGs to {root}", unit="img"):
        w = int(side * rng.uniform(1.0, 4 / 3))
        field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, side), Image.BICUBIC)
        img = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, (side, w, 3))
        path = root / ("train" if i < n * 9 // 10 else "val") / f"c{i % CLASSES}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=90)
    (root / "complete").write_text("")
    return root


class TorchvisionStyle(Dataset):
    """``ds[i]`` -> (list of 2 float views ``[3, S, S]``, i): full decode, then everything per image."""

    def __init__(self, streamed, augment, size: int):
        self.ds, self.augment, self.size = streamed, augment, size
        self.recipes = augment.stream_recipes()

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.ds.samples.read(i)[0]) as img:
            img = img.convert("RGB")
        boxes = crop_boxes_for(self.recipes, 2, img.size[0], img.size[1], torch.default_generator)
        stats = self.augment.stats_on("cpu")
        views = []
        for v, (x0, y0, bw, bh) in enumerate(boxes.tolist()):
            crop = img.resize((self.size, self.size), Image.BICUBIC, box=(x0, y0, x0 + bw, y0 + bh))
            x = torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None].float().div_(255)
            x = augment_crops(x, self.recipes[v % len(self.recipes)], RandomSource(None))
            views.append(ops.normalize(x, *stats)[0])
        return views, i


def time_stream(feed, augment, order, first: int, batches: int, batch: int) -> float:
    """Seconds for ``batches`` batches of views from the streaming path (after one warm-up batch)."""
    it = feed.epoch(0, order, first, first + batches + 1, batch)
    idx, _, crops = next(it)
    augment.views_of_crops(crops, idx, 2)
    t0 = time.perf_counter()
    for idx, _, crops in it:
        augment.views_of_crops(crops, idx, 2)
    seconds = time.perf_counter() - t0
    it.close()
    return seconds


def time_per_sample(dataset, workers: int, batches: int, batch: int, seed: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - t0
    del it
    return seconds


def in_memory_training(steps: int) -> float:
    """Views/s of the main job's training step (the defaults of siamlab/config.py), data in memory."""
    tr = build_trainer([])
    batches = Batches(tr)
    time_train_steps(tr, batches, 1)
    return views_per_s(tr, steps, time_train_steps(tr, batches, steps))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="JPEG files to generate (cached under /tmp)")
    p.add_argument("--side", type=int, default=256, help="short side of the generated JPEGs")
    p.add_argument("--size", type=int, default=224, help="side of the training views")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes of both paths")
    p.add_argument("--batches", type=int, default=4, help="timed batches per block and path")
    p.add_argument("--blocks", type=int, default=2, help="alternating blocks per path")
    p.add_argument("--train-steps", type=int, default=6, help="timed steps of the in-memory training throughput")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the training process (0 = the cores the workers leave, at least 1)")
    args = p.parse_args()
    set_threads(args.threads)
    root = jpeg_folder(args.n, args.side)
    cfg = config.load(None, ["data.name=image_folder", f"data.root={root}", f"data.image_size={args.size}",
                             "data.train_subset=0", "data.stream=true", "data.augment=zhang_a1", f"data.workers={args.workers}"])
    ds = for_device(load_dataset(cfg.data, "train"), "cpu")
    augment = build_augment(cfg.data, ds)
    if not args.threads:  # as the trainer does: the training process keeps the cores the workers leave
        set_threads(training_threads(ds.settings))
    feed = StreamFeed(ds, augment.stream_recipes(), 2, 0, torch.device("cpu"))
    baseline = TorchvisionStyle(ds, augment, args.size)
    order = epoch_order(len(ds), 0, 0)
    need = args.blocks * (args.batches + 1) * args.batch
    if need > len(ds):
        raise SystemExit(f"bench_stream: {need} images needed, the folder's train split has {len(ds)}; raise --n.")
    t_stream = t_sample = 0.0
    for b in range(args.blocks):
        t_stream += time_stream(feed, augment, order, b * (args.batches + 1), args.batches, args.batch)
        t_sample += time_per_sample(baseline, args.workers, args.batches, args.batch, seed=b)
    images = args.blocks * args.batches * args.batch
    a, c = images / t_stream, images / t_sample
    train = in_memory_training(args.train_steps)
    print(header())
    print(f"{len(ds)} JPEGs of {args.side} px ({root}), views {args.size} px, zhang_a1, 2 views, batch {args.batch}, "
          f"{args.workers} DataLoader workers, {images} images timed per path in {args.blocks} alternating blocks")
    print(f"streaming (decode-time crop, batched rest) : {a:8.1f} images/s")
    print(f"per-sample torchvision-style DataLoader    : {c:8.1f} images/s")
    print(f"ratio (streaming / per-sample)             : {a / c:.2f}x")
    print(f"in-memory training, main job defaults      : {train:8.1f} views/s (unchanged by streaming)")


if __name__ == "__main__":
    main()
