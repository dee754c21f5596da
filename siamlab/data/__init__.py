"""Datasets (held in memory as tensors, or streamed from disk) and batched augmentation on the device (SPEC §5).

``load_dataset(data_cfg, split) -> ArrayDataset`` (or a ``StreamDataset`` for image folders and tar
shards too large for memory); ``build_augment(data_cfg, dataset) -> Augment`` with
``views(x, index, n)``, ``views_of_crops(crops, index, n)`` and ``clean(x)``; ``dataset_status()`` for
``siamlab datasets``.
"""
from .augment import PRESETS, Augment, build_augment
from .dataset import ArrayDataset
from .registry import DATASETS, check_data_config, dataset_status, load_dataset

__all__ = ["ArrayDataset", "Augment", "DATASETS", "PRESETS", "build_augment", "check_data_config", "dataset_status",
           "load_dataset"]
