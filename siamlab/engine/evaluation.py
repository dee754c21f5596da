"""One evaluation of a network during or after training: kNN / NCM / bound (siamlab.eval), the representation
metrics of the clean test features, and LiDAR on augmented views of training images (label-free quality)."""
from __future__ import annotations

from .. import collectives


def evaluate_network(method, trainer) -> dict:
    """kNN / NCM / bound on clean features of ``trainer``'s splits, with ``method`` as the network. Under torchrun
    the feature extraction is split over the ranks (each embeds 1/world of each split, SPEC §6); every rank then
    computes the metrics on the gathered features and rank 0's numbers are used by all (bit-identical
    best-checkpoint choices)."""
    from ..eval.evaluate import evaluate

    cfg = trainer.cfg
    feats = {}
    res = evaluate(method, trainer.reference_set, trainer.test_ds, trainer.augment, cfg.eval, batch_size=512,
                   on_features=feats.update)
    # Representation metrics on clean test features (‖Σ − I‖², effective rank, m_o/m_r, RankMe, α-ReQ ...);
    # evaluation's own keys win where both define one (l_cor, l_bound).
    rep = trainer.diag.representation_metrics(feats, trainer.test_ds.y, trainer.test_ds.num_classes)
    ev = cfg.eval
    if ev.lidar_images and collectives.is_main():  # LiDAR on views of training images (own generator)
        from ..analysis.labelfree import lidar_metrics
        from ..eval.features import embed_views

        rep.update(lidar_metrics(embed_views(method, trainer.train_ds, trainer.augment, ev.lidar_images, ev.lidar_views,
                                             cfg.engine.seed)))
    return collectives.broadcast_object({**rep, **res})
