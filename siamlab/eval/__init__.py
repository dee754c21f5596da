"""Evaluation of frozen features: weighted kNN, linear probes, GEN's nearest class mean (SPEC §3)."""
from .evaluate import evaluate
from .features import extract_features
from .knn import knn_accuracy
from .linear import OnlineProbe, linear_probe
from .ncm import gen_bound, ncm_accuracy

__all__ = ["evaluate", "extract_features", "knn_accuracy", "OnlineProbe", "linear_probe", "gen_bound", "ncm_accuracy"]
