"""Typed run configuration: every default lives here, in one place.

A run is described by :class:`RunConfig`, a tree of dataclasses. It is built from defaults, then a
YAML file (``yaml.safe_load``), then dotted overrides such as ``optim.lr=0.1``. Every field is
type-checked and range-checked; a bad field raises :class:`~siamlab.errors.ConfigError` with one
sentence naming the field, the value and what is allowed.

Method-specific knobs (``method.tau``, ``method.momentum`` ...) are declared by each method as its
own ``Params`` dataclass (see :mod:`siamlab.methods.base`); they are stored in
``MethodConfig.params`` and validated against that dataclass when the method is built.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError, bad_value


# The defaults are the README's main job: SimCLR on 10,000 Fashion-MNIST images with a small ConvNet,
# sized for a 2-core CPU (a few minutes). SimSiam is `method.name=simsiam`; paper-scale settings live
# in configs/*.yaml and the experiment catalogue.


@dataclass
class DataConfig:
    name: str = "fashion_mnist"  # see `siamlab datasets`
    root: Optional[str] = None  # folder or archive; None = the dataset's standard location
    augment: str = "auto"  # preset name (see siamlab.data.augment.PRESETS); auto = by dataset
    image_size: int = 0  # 0 = the dataset's native size
    train_subset: int = 10000  # 0 = all training samples; N = a fixed, seeded, class-balanced subset of N
    test_subset: int = 0  # 0 = all test samples
    views: int = 2  # augmented views per image
    noise_std: Optional[float] = None  # Gaussian noise of the toy / noise presets; None = preset default
    on_device: bool = True  # hold the uint8 dataset on the training device
    # image_folder / image_shards (README "Data"): None = stream from disk only when the decoded split would take more
    # than half of the available memory; true / false force streaming / holding it in memory
    stream: Optional[bool] = None
    workers: Optional[int] = None  # DataLoader processes decoding streamed images; None = a core each (per rank), <= 8
    on_corrupt: str = "stop"  # an unreadable image: stop (one sentence naming it) | skip (count it in the metrics)
    max_image_pixels: int = 89_478_485  # larger images are refused (PIL's decompression-bomb limit)


@dataclass
class ModelConfig:
    backbone: str = "convnet"  # resnet18 | resnet50 | convnet | mlp | vit_tiny | vit_small (| user: siamlab.fit)
    patch_size: int = 16  # ViT patch side; must divide the image side (28 px Fashion-MNIST: 4, 7 or 14)
    stem: str = "auto"  # cifar | imagenet | auto (cifar for images <= 64 px)
    width: int = 32  # base width of convnet / mlp hidden size (ResNets ignore it)
    zero_init_residual: bool = True
    proj_hidden: int = 512  # ZHANG A.1 uses 2048 (configs/zhang_a1_cifar100.yaml)
    proj_out: int = 512
    proj_layers: int = 3  # SimSiam projector: FC-BN-ReLU-FC-BN-ReLU-FC-BN
    proj_final_bn: bool = True  # false: end with FC+bias (Barlow Twins / VICReg / BRIDGE projectors)
    pred_hidden: int = 128  # bottleneck of the MLP predictor (ZHANG A.1: 512 for d = 2048)
    sync_bn: bool = True  # convert BN to SyncBatchNorm under torchrun


@dataclass
class MethodConfig:
    name: str = "simclr"  # the main job; `siamlab methods` lists all
    decor_weight: float = 0.0  # adds decor_weight × ZHANG A.6 de-correlation loss to any method
    params: dict = field(default_factory=dict)  # validated against the method's Params dataclass


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | lars | adamw
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.1  # base lr; the effective lr is lr * batch_size / 256
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    fix_predictor_lr: bool = True  # SimSiam: the predictor keeps the base lr (no cosine decay)
    lars_eta: float = 0.02
    grad_clip: float = 0.0  # 0 = off


LABEL_FREE_METRICS = tuple(f"{m}_{f}" for m in ("rankme", "lidar", "alpha_req") for f in ("projector", "backbone"))


@dataclass
class EvalConfig:
    knn_k: int = 200
    knn_t: float = 0.1
    every_epochs: int = 4  # kNN every N epochs (0 = only at the end)
    online_probe: bool = True
    probe_lr: float = 0.1
    random_init: bool = True  # evaluate the untrained network too
    # LiDAR (README "Label-free quality"): images of the training split x augmented views each, at every evaluation;
    # 0 images = off. Thilak et al. use 1000 x 50; these defaults keep its cost small next to the evaluation.
    lidar_images: int = 200
    lidar_views: int = 5
    # the label-free metric that picks checkpoints/best_unsupervised.pt (README "Label-free quality"): one of
    # LABEL_FREE_METRICS; RankMe and LiDAR keep their highest value, alpha-ReQ the alpha closest to 1. RankMe of the
    # backbone: the one that tracked kNN best over the catalogue's runs (`siamlab labelfree-validate`)
    best_unsupervised: str = "rankme_backbone"


@dataclass
class DiagConfig:
    every_steps: int = 50  # 0 = off
    gradients: bool = True  # gradient decomposition (ZHANG §3.2) when logging


@dataclass
class EngineConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs"
    run_name: str = ""  # empty = <method>-<dataset>-<timestamp>
    bf16: bool = False  # bfloat16 autocast for the networks; losses stay float32
    channels_last: bool = True  # image networks and views in NHWC: 1.3-1.6x faster convolutions on the CPU
    compile: bool = False
    checkpoint_every_epochs: int = 1
    progress: bool = True
    threads: int = 0  # torch threads; 0 = OMP_NUM_THREADS, else the cores this process may use (engine/threads.py)
    loggers: list = field(default_factory=lambda: ["csv", "tensorboard"])  # beside metrics.jsonl: csv, tensorboard, wandb
    wandb_project: str = "siamlab"  # W&B project when "wandb" is in loggers


@dataclass
class RunConfig:
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    phases: list = field(default_factory=list)  # [{"epoch": E, "method": {...}}] loss switches (ZHANG Fig. 5b)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BACKBONES = ("resnet18", "resnet50", "convnet", "mlp", "vit_tiny", "vit_small", "user")  # user: siamlab.fit's module

# Range checks: field -> (predicate, description of what is allowed)
_RULES = {
    "data.image_size": (lambda v: v >= 0, "an integer >= 0 (0 = native size)"),
    "data.train_subset": (lambda v: v >= 0, "an integer >= 0 (0 = all)"),
    "data.test_subset": (lambda v: v >= 0, "an integer >= 0 (0 = all)"),
    "data.views": (lambda v: v >= 2, "an integer >= 2"),
    "data.noise_std": (lambda v: v is None or v >= 0, "a number >= 0"),
    "data.workers": (lambda v: v is None or v >= 0, "an integer >= 0 (0 = decode in the training process)"),
    "data.on_corrupt": (lambda v: v in ("stop", "skip"), "stop or skip"),
    "data.max_image_pixels": (lambda v: v >= 1, "an integer >= 1"),
    "method.decor_weight": (lambda v: v >= 0, "a number >= 0"),
    "model.backbone": (lambda v: v in BACKBONES, f"one of {', '.join(BACKBONES)}"),
    "model.patch_size": (lambda v: v >= 1, "an integer >= 1 dividing the image side"),
    "model.stem": (lambda v: v in ("auto", "cifar", "imagenet"), "one of auto, cifar, imagenet"),
    "model.width": (lambda v: v >= 1, "an integer >= 1"),
    "model.proj_hidden": (lambda v: v >= 1, "an integer >= 1"),
    "model.proj_out": (lambda v: v >= 1, "an integer >= 1"),
    "model.proj_layers": (lambda v: v in (1, 2, 3), "1, 2 or 3"),
    "model.pred_hidden": (lambda v: v >= 1, "an integer >= 1"),
    "optim.name": (lambda v: v in ("sgd", "lars", "adamw"), "one of sgd, lars, adamw"),
    "optim.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "optim.batch_size": (lambda v: v >= 2, "an integer >= 2"),
    "optim.lr": (lambda v: v > 0, "a number > 0"),
    "optim.weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "optim.momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optim.warmup_epochs": (lambda v: v >= 0, "a number >= 0"),
    "optim.schedule": (lambda v: v in ("cosine", "constant"), "cosine or constant"),
    "optim.grad_clip": (lambda v: v >= 0, "a number >= 0 (0 = off)"),
    "optim.lars_eta": (lambda v: v > 0, "a number > 0 (LARS trust coefficient, e.g. 0.02)"),
    "eval.knn_k": (lambda v: v >= 1, "an integer >= 1"),
    "eval.knn_t": (lambda v: v > 0, "a number > 0"),
    "eval.every_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "eval.probe_lr": (lambda v: v > 0, "a number > 0"),
    "eval.lidar_images": (lambda v: v == 0 or v >= 2, "0 (off) or an integer >= 2"),
    "eval.lidar_views": (lambda v: v >= 2, "an integer >= 2"),
    "eval.best_unsupervised": (lambda v: v in LABEL_FREE_METRICS, "one of " + ", ".join(LABEL_FREE_METRICS)),
    "diag.every_steps": (lambda v: v >= 0, "an integer >= 0 (0 = off)"),
    "engine.checkpoint_every_epochs": (lambda v: v >= 1, "an integer >= 1"),
    "engine.threads": (lambda v: v >= 0, "an integer >= 0"),
    "engine.loggers": (lambda v: all(x in ("csv", "tensorboard", "wandb") for x in v),
                       "a list of csv, tensorboard, wandb (tensorboard is skipped when not installed)"),
}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(field_name: str, value: Any, tp) -> Any:
    """Convert ``value`` (from YAML or a ``--set`` string) to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce(field_name, value, args[0])
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad_value(field_name, value, "true or false")
    if tp is int:
        if isinstance(value, bool):
            raise bad_value(field_name, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise bad_value(field_name, value, "an integer")
    if tp is float:
        if isinstance(value, bool):
            raise bad_value(field_name, value, "a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad_value(field_name, value, "a number")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad_value(field_name, value, "a string")
    if tp in (list, dict) or origin in (list, dict, tuple):
        want = origin or tp
        if isinstance(value, str):
            value = parse_yaml(value, f"--set {field_name}")
        if want is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, want):
            raise bad_value(field_name, value, f"a {_type_name(want)}")
        return value
    if dataclasses.is_dataclass(tp):  # a whole section set to something else (`model: 5` in a hand-edited file)
        raise bad_value(field_name, value, f"a mapping of the {field_name} fields")
    return value


def _fields(obj) -> dict:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def set_field(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set ``cfg.<dotted>`` to ``value`` with type coercion and validation."""
    parts = dotted.split(".")
    if parts[0] == "method" and len(parts) == 2 and parts[1] not in ("name", "params", "decor_weight"):
        cfg.method.params[parts[1]] = value  # validated when the method is built
        return
    if parts[0] == "phases":
        cfg.phases = coerce("phases", value, list)
        return
    obj = cfg
    for i, key in enumerate(parts):
        fields = _fields(obj) if dataclasses.is_dataclass(obj) else {}
        if key not in fields:
            where = ".".join(parts[:i]) or "config"
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has fields {', '.join(sorted(fields))}."
            )
        if i == len(parts) - 1:
            v = coerce(dotted, value, fields[key])
            rule = _RULES.get(dotted)
            if rule and not rule[0](v):
                raise bad_value(dotted, v, rule[1])
            setattr(obj, key, v)
        else:
            obj = getattr(obj, key)


def _flatten(d: dict) -> list[tuple[str, Any]]:
    """Sections of a config mapping as (dotted key, value) pairs; ``method`` params are flattened."""
    out = []
    for section, body in d.items():
        if section == "phases" or not isinstance(body, dict):
            out.append((section, body))
            continue
        for key, value in body.items():
            if section == "method" and key == "params":
                out += [(f"method.{k}", v) for k, v in (value or {}).items()]
            else:
                out.append((f"{section}.{key}", value))
    return out


def from_dict(d: dict, base: Optional[RunConfig] = None) -> RunConfig:
    cfg = base if base is not None else RunConfig()
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of sections (method, data, optim ...), got {type(d).__name__}.")
    for key, value in _flatten(d):
        set_field(cfg, key, value)
    return cfg


_YAML_TAG = re.compile(r"tag '([^']*)'")


def _tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:python/object/apply:os.system`` -> ``!!python/object/apply`` (the kind of object
    it would construct); other tags as written."""
    if tag.startswith("tag:yaml.org,2002:"):
        tag = "!!" + tag[len("tag:yaml.org,2002:"):]
    return tag.split(":", 1)[0] if tag.startswith("!!python/") else tag


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)``, or one ConfigError sentence naming ``source`` (a file or a ``--set`` key).

    The safe loader constructs plain values only (mappings, lists, strings, numbers, booleans, null);
    a tag asking for anything else (``!!python/object/apply`` would call a function) is named as what it
    is and never loaded, and a syntax error says where it is.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        tag = _YAML_TAG.search(str(getattr(e, "problem", "") or ""))
        if isinstance(e, yaml.constructor.ConstructorError) and tag:
            name = _tag_name(tag.group(1))
            if name.startswith("!!python/"):
                raise ConfigError(f"{source}{where}: the YAML uses the tag {name}, which siamlab never loads (it would "
                                  "create Python objects); write plain values instead.") from None
            raise ConfigError(f"{source}{where}: the YAML uses the tag {name}, which siamlab does not read; "
                              "remove the tag and write a plain value.") from None
        raise ConfigError(f"{source} is not valid YAML{where}; fix the syntax.") from None


def apply_overrides(cfg: RunConfig, overrides: Optional[list]) -> RunConfig:
    """``key=value`` strings (``--set``) applied in order; each value is parsed as YAML."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form key=value (e.g. optim.lr=0.1).")
        key, value = (x.strip() for x in item.split("=", 1))
        set_field(cfg, key, parse_yaml(value, f"--set {key}") if value else value)
    return cfg


def load(path: Optional[str] = None, overrides: Optional[list[str]] = None) -> RunConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides."""
    cfg = RunConfig()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist; pass the path of a YAML file (see configs/).")
        from_dict(parse_yaml(p.read_text(), f"config file {str(p)!r}") or {}, cfg)
    return apply_overrides(cfg, overrides)


NOT_SET = "(not set)"  # how :func:`differences` shows a key that one config lacks


def differences(old: dict, new: dict, sections: tuple = (), defaults: Optional[dict] = None) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every field whose meaning differs between two configs given as
    mappings (``RunConfig.to_dict()``), in section order; ``sections`` limits the comparison (e.g. ``("method",)``);
    method knobs are named ``method.<knob>``, as ``--set`` names them. A key on one side only is equal when the
    other side holds its default (``defaults``: shaped like ``RunConfig.to_dict()``, the dataclass defaults when
    None; the method's ``Params`` defaults under ``method.params`` judge its knobs), so a field added after ``old``
    was written reads as its default; a key without a default differs when ``old`` lacks it and is ignored when
    ``new`` lacks it (removed since: nothing reads it). Lists (``phases``) must match exactly."""
    known = dict(_flatten(defaults if defaults is not None else RunConfig().to_dict()))
    flat = [dict(_flatten({k: v for k, v in d.items() if not sections or k in sections})) for d in (old, new)]

    def same(k: str) -> bool:
        if k in flat[0] and k in flat[1]:
            return flat[0][k] == flat[1][k]
        present = flat[0][k] if k in flat[0] else flat[1][k]
        return known[k] == present if k in known else k in flat[0]

    keys = list(flat[0]) + [k for k in flat[1] if k not in flat[0]]
    return [(k, flat[0].get(k, NOT_SET), flat[1].get(k, NOT_SET)) for k in keys if not same(k)]


def dump(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
