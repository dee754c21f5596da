"""One call that evaluates a method's clean features (SPEC §3): weighted kNN, GEN's NCM and its bound.

The engine calls it on the trained method and on a randomly initialized copy (the random-init row
every results table shows). Under torchrun (SPEC §6) it is collective: the feature extraction is split
over the ranks (:func:`~siamlab.eval.features.extract_all_features`).
"""
from __future__ import annotations

from typing import Optional

from .features import extract_all_features, module_device
from .knn import knn_accuracy
from .ncm import gen_bound, ncm_accuracy


def evaluate(method, train_ds, test_ds, augment, eval_cfg, batch_size: int = 512, on_features=None,
             on_train_features=None, progress: Optional[str] = None) -> dict:
    """Metrics of every feature ``method.embed`` returns (``backbone``, ``projector``, ...).

    For each feature name ``<f>``:
      knn_<f>        weighted kNN top-1 accuracy, percent (k = eval_cfg.knn_k, T = eval_cfg.knn_t)
      ncm_<f>        nearest-class-mean top-1 accuracy, percent (GEN eq. 4; means of the train split)
      gen_bound_<f>  GEN Theorem 3 upper bound on the NCM error, percent (>= 100 is vacuous)
      l_bound_<f>    GEN eq. 11;  l_cor_<f>: GEN eq. 8;  gen_eps_<f>: ε of GEN eq. 6
    The bound quantities are measured on the test split, the one whose error they bound.
    ``on_features(test_features)`` (optional) receives the clean test features, so callers can
    compute further metrics without extracting them twice; ``on_train_features`` likewise receives
    the train split's (e.g. for an offline linear probe). ``progress``: a label (e.g. "trained"); when
    given, the embedding of each split shows a progress bar.

    Under torch.distributed every rank must call it: each embeds 1/world of each split, and all end with
    the full feature matrices (those of one process, in dataset order). The metrics are then computed on
    every rank: they are cheap next to the extraction (one similarity matrix, class means), need no
    further communication, and every rank raises the same error on bad input instead of leaving the
    others waiting on a broadcast. Callers that need bit-identical numbers on every rank (GPU kernels
    need not be) broadcast rank 0's, as the trainer does.
    """
    device = module_device(method)
    def label(split: str) -> Optional[str]:
        return None if progress is None else f"{progress}: embedding the {split} split"

    train = extract_all_features(method, train_ds, augment, batch_size, device, label("train"))
    test = extract_all_features(method, test_ds, augment, batch_size, device, label("test"))
    if on_features is not None:
        on_features(test)
    if on_train_features is not None:
        on_train_features(train)
    k = train_ds.num_classes
    out = {}
    for name in train:
        out[f"knn_{name}"] = knn_accuracy(
            train[name], train_ds.y, test[name], test_ds.y, k, eval_cfg.knn_k, eval_cfg.knn_t, device=device
        )
        out[f"ncm_{name}"] = ncm_accuracy(train[name], train_ds.y.cpu(), test[name], test_ds.y.cpu(), k)
        bound = gen_bound(test[name].to(device), test_ds.y.to(device), k)
        out[f"gen_bound_{name}"] = 100.0 * bound["theorem3"]
        out[f"l_bound_{name}"] = bound["l_bound"]
        out[f"l_cor_{name}"] = bound["l_cor"]
        out[f"gen_eps_{name}"] = bound["eps"]
    return out

