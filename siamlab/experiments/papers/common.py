"""Shared pieces of the paper modules: method dicts, table columns, paper-scale presets, smoke notes."""
from __future__ import annotations

from ..spec import Column


def method(name: str, **params) -> dict:
    """Config override selecting a method (``params`` validated against the method's Params)."""
    return {"method": {"name": name, "params": dict(params)}}


# BYOL, Barlow Twins, VICReg, SwAV and BRIDGE projectors end with a plain FC (no BN); SimSiam's ends with BN.
NO_FINAL_BN = {"model": {"proj_final_bn": False}}


def with_(*dicts: dict) -> dict:
    """Merge override dicts left to right."""
    from ..spec import merge

    out: dict = {}
    for d in dicts:
        out = merge(out, d)
    return out


KNN = Column("knn", "top-1 %", 1)
COLLAPSE = Column("fails", "collapse (fraction of seeds)", 2)
STD = Column("std", "√d·std(z/‖z‖)", 3)
STD_RAW = Column("std_raw", "std(z/‖z‖)", 4)
M_O = Column("m_o", "m_o", 3)
M_R = Column("m_r", "m_r", 3)
CENTER = Column("center", "‖center‖", 3)
COV = Column("cov", "covariance (A.6)", 4)

# Seeds every experiment starts with: one seed has no interval (stats), so no claim is decided with fewer than
# two; three give t(0.975, 2) = 4.3 standard errors. The runner adds seeds up to gates.SEED_CAP for claims
# that stay undecidable.
SEEDS = {"tiny": 1, "smoke": 3, "paper": 3}

ACCURACY_NOTE = (
    "Accuracy: the paper reports linear-probe top-1 (CIFAR/ImageNet); observed values are weighted kNN top-1 (k = 20, "
    "T = 0.1) on clean backbone features of the smoke dataset, so orderings and collapse can be compared, not numbers. "
    "Every claim is decided by its 95 % interval over seeds (arms paired by seed); an accuracy comparison only between "
    "arms whose gain over their own random-init network has its interval above 1 point; otherwise the claim is "
    "'undecidable at this scale'. "
)

SMOKE_IMAGE_NOTE = (
    "Smoke scale: a fixed class-balanced Fashion-MNIST subset (5 000 train / 2 000 test images, 28×28, 10 classes) "
    "with ZHANG A.1's augmentation (crop 0.2–1 bicubic, brightness/contrast 0.4 with p = 0.8, flip; saturation, hue "
    "and grayscale do nothing on one channel), SGD with ZHANG's base lr 0.5·B/256, momentum 0.9, cosine schedule, on a "
    "2-core CPU. Deviations from ZHANG A.1, all for the CPU budget: a 4-block ConvNet of width 8 (64-d features) "
    "instead of ResNet-18 on CIFAR-100; projector 256-256-256 (d = 256, not 2048) and predictor bottleneck 64 (ZHANG's "
    "4:1 ratio); batch 128 (not 256); weight decay 5e-4 (SimSiam's CIFAR value; ZHANG 1e-5); no warm-up; 20 epochs "
    "(not 1000) unless the experiment says otherwise. Why this data: on scikit-learn digits (used before) the random-"
    "init network was already near the ceiling and every trained arm scored lower; on this subset the reference arms "
    "beat their random-init network (the random-init row of the table), so learning shows. "
)
SMOKE_TOY_NOTE = (
    "Smoke scale: CENTER §3.2 toy data (blobs / moons, 2-D, three classes, the samples of one class are the views "
    "of one 'image'), a 2-layer MLP backbone (width 64), projector 64-64-16, on a 2-core CPU. "
)

# ZHANG A.1 is the image preset of siamlab.experiments.scales (ResNet-18, CIFAR-100, 1000 epochs).
GEN_PAPER = {  # GEN §5: CIFAR-10, ResNet-18, SimSiam 600 / Barlow Twins 800 epochs
    "data": {"name": "cifar10", "augment": "zhang_a1"},
    "optim": {"epochs": 600, "batch_size": 256, "lr": 0.05, "weight_decay": 5e-4, "warmup_epochs": 0},
}
# BRIDGE §5.1: ImageNet, ResNet-50, LARS lr 0.3·B/256, batch 2048, 10 warm-up, 100 epochs; LARS trust coefficient
# η = 0.001 as in the authors' code (its LARS, inherited from Barlow Twins'; BYOL's is the same), weight decay
# 1.5e-6 as in BYOL and Barlow Twins, whose settings §5.1 follows (the authors' code defaults to 1e-6).
BRIDGE_PAPER = {
    "data": {"name": "image_folder", "augment": "bridge", "image_size": 224},
    "model": {"backbone": "resnet50", "stem": "imagenet", "zero_init_residual": True},
    "optim": {"name": "lars", "epochs": 100, "batch_size": 2048, "lr": 0.3, "weight_decay": 1.5e-6, "warmup_epochs": 10,
              "lars_eta": 0.001},
    "eval": {"every_epochs": 5},
}
CENTER_PAPER = {  # CENTER §3: ImageNet-100 (architecture and schedule not stated: ResNet-18, 200 epochs assumed)
    "data": {"name": "image_folder", "augment": "zhang_a1", "image_size": 224},
    "model": {"backbone": "resnet18", "stem": "imagenet"},
    "optim": {"epochs": 200, "batch_size": 256, "lr": 0.05, "weight_decay": 1e-4, "warmup_epochs": 10},
}
