"""``siamlab data shard ROOT OUT``: tar shards in the WebDataset layout (:mod:`siamlab.data.shards`) of an image folder.

* **Checked before anything is written**: both splits' image lists, and that neither output folder already holds
  shards, so a refusal leaves nothing behind.
* **Unreadable images** (corrupt, cut short, zero bytes) are found by decoding every image before it is packed
  (JPEGs at their smallest DCT scale: :func:`siamlab.data.decode.decode_error`). As in training
  (``data.on_corrupt``): ``on_corrupt="stop"`` (the default) refuses in one sentence naming how many and which,
  having written nothing; ``"skip"`` leaves them out, names them and lists them in the index under ``skipped``.
* **No half output**: each split is written into a hidden folder ``OUT/.<split>.siamlab-partial`` and moved into
  place once both splits are complete; a refused or failed run removes them.
* **Provenance**: every sample records its source file (``<key>.path``: its path relative to ROOT), which
  messages about the sample name (:meth:`siamlab.data.shards.ShardSamples.read`).

Writing uses ``webdataset.ShardWriter`` (``pip install siamlab[shards]``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

from ..errors import ConfigError, DataError
from .decode import decode_error
from .folder import list_split, split_dir
from .shards import INDEX, INSTALL, PATTERN

PARTIAL = ".siamlab-partial"
SHOWN = 5  # unreadable files named in a message


def _plan(src: Path, dst: Path) -> list:
    """(output name, files, labels, classes) of both splits, after every check that needs no image decoded."""
    plan = []
    for split in ("train", "test"):
        files, labels, classes = list_split(src, split)
        name = split_dir(src, split).name
        folder = dst / name
        if folder.is_dir() and any(folder.glob("*.tar")):
            raise DataError(f"{folder} already holds shards; choose an empty output folder.")
        plan.append((name, files, labels, classes))
    return plan


def _named(bad: list) -> str:
    shown = ", ".join(f"{p} ({why})" for p, why in bad[:SHOWN])
    return shown + (f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")


def _write_split(webdataset, src: Path, part: Path, name: str, files: list, labels: list, per_shard: int, bad: list,
                 stop: bool, progress: bool) -> OrderedDict:
    """Pack one split into ``part``; unreadable files are appended to ``bad``. Under ``stop``, once one is found
    the rest is only checked (nothing more is written: the output is removed anyway)."""
    from tqdm.auto import tqdm

    shards: OrderedDict = OrderedDict()
    with webdataset.ShardWriter(str(part / PATTERN), maxcount=per_shard, maxsize=float("inf"), verbose=0) as sink:
        bar = tqdm(zip(files, labels), total=len(files), desc=f"sharding {name}", unit="img", disable=not progress)
        for i, (path, label) in enumerate(bar):
            source = path.relative_to(src).as_posix()
            try:
                data = path.read_bytes()
            except OSError as err:
                bad.append((source, type(err).__name__))
                continue
            why = decode_error(data)
            if why is not None:
                bad.append((source, "empty file" if not data else why))
                continue
            if stop and bad:
                continue
            sink.write({"__key__": f"{i:08d}", path.suffix.lower().lstrip("."): data, "cls": label,
                        "path": source.encode()})
            shards.setdefault(Path(sink.fname).name, []).append(label)
    return shards


def _move_into_place(part: Path, final: Path) -> None:
    if not final.exists():
        os.replace(part, final)
        return
    for child in sorted(part.iterdir(), key=lambda p: p.name == INDEX):  # the index last: it marks a finished split
        os.replace(child, final / child.name)
    part.rmdir()


def write_shards(root: str, out: str, per_shard: int = 1000, progress: bool = True, on_corrupt: str = "stop") -> dict:
    """Shards of the image folder at ``root`` in ``out`` (module docstring); returns {split folder: samples written,
    "skipped": [unreadable files left out, relative to ``root``]}."""
    try:
        import webdataset
    except ImportError:
        raise DataError(f"writing tar shards needs the webdataset package; {INSTALL}.") from None
    if isinstance(per_shard, bool) or not isinstance(per_shard, int) or per_shard < 1:
        raise ConfigError(f"--per-shard={per_shard!r} is not valid: expected an integer >= 1.")
    if on_corrupt not in ("stop", "skip"):
        raise ConfigError(f"--on-corrupt={on_corrupt!r} is not valid: expected stop or skip.")
    src, dst = Path(root).expanduser(), Path(out).expanduser()
    plan = _plan(src, dst)
    bad: list = []
    parts = [dst / f".{name}{PARTIAL}" for name, *_ in plan]
    try:
        indexes = []
        for part, (name, files, labels, classes) in zip(parts, plan):
            shutil.rmtree(part, ignore_errors=True)  # left by a run that was killed
            part.mkdir(parents=True)
            first = len(bad)
            shards = _write_split(webdataset, src, part, name, files, labels, per_shard, bad, on_corrupt == "stop",
                                  progress)
            indexes.append({"wids_version": 1, "name": f"{src.name}-{name}", "classes": classes,
                            "shardlist": [{"url": k, "nsamples": len(v), "labels": v} for k, v in shards.items()],
                            "skipped": [p for p, _ in bad[first:]]})
        if bad and on_corrupt == "stop":
            raise DataError(f"{len(bad)} image(s) of {src} cannot be decoded: {_named(bad)}; fix or remove them, or pass "
                            "--on-corrupt skip to leave them out (nothing was written).")
        for index, (name, *_) in zip(indexes, plan):
            if not index["shardlist"]:
                raise DataError(f"no image of {src / name} can be decoded ({_named(bad)}); nothing was written.")
        written = {}
        for part, index, (name, *_) in zip(parts, indexes, plan):
            (part / INDEX).write_text(json.dumps(index) + "\n")
            _move_into_place(part, dst / name)
            written[name] = sum(s["nsamples"] for s in index["shardlist"])
    finally:
        for part in parts:
            shutil.rmtree(part, ignore_errors=True)
    if bad:
        print(f"siamlab: {len(bad)} unreadable image(s) left out (--on-corrupt skip): {_named(bad)}.", file=sys.stderr)
    return {**written, "skipped": [p for p, _ in bad]}
