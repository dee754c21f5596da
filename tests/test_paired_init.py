"""Arms paired by seed (ISSUE 19.1): the same engine.seed gives two methods the same initial backbone, the
same projector and predictor where their shapes match, and the same first views; another seed does not."""
import torch

from siamlab import config
from siamlab.engine.build import build_run
from siamlab.models import part_seed


def cfg_for(tmp_path, method: str, seed: int, *extra):
    return config.load(None, [
        f"method.name={method}", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
        "model.proj_out=8", "model.pred_hidden=4", "optim.batch_size=32", "optim.epochs=1", "engine.progress=false",
        "diag.every_steps=0", f"engine.seed={seed}", "engine.threads=1", f"engine.out={tmp_path}",
        f"engine.run_name={method}-{seed}", *extra])


def weights(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def build(tmp_path, method, seed, *extra):
    torch.manual_seed(12345 + len(method))  # whatever the caller's RNG holds, the parts are drawn from the seed
    return build_run(cfg_for(tmp_path, method, seed, *extra), torch.device("cpu"))[3]


def test_part_seeds_depend_on_the_seed_and_the_part_only():
    assert part_seed(0, "backbone") == part_seed(0, "backbone")
    assert len({part_seed(0, "backbone"), part_seed(0, "projector"), part_seed(1, "backbone")}) == 3
    assert 0 <= part_seed(2**40, "heads") < 2**63


def test_two_methods_with_one_seed_start_from_the_same_backbone_projector_and_predictor(tmp_path):
    simsiam, byol, center = (build(tmp_path, m, 3) for m in ("simsiam", "byol", "center"))
    nosg = build(tmp_path, "simsiam_nosg", 3)  # built with a different RNG state before it: the seed alone decides
    back = weights(simsiam.encoder.backbone)
    assert same(back, weights(byol.encoder.backbone)) and same(back, weights(center.encoder.backbone))
    assert same(weights(simsiam.encoder.projector), weights(byol.encoder.projector))
    # SimSiam and SimSiam without stop-gradient build the same MLP predictor first among their heads
    assert same(weights(simsiam.predictor), weights(nosg.predictor))


def test_a_different_architecture_of_one_part_leaves_the_others_alike(tmp_path):
    """A projector without its final BN (another module list) still gets the same backbone and the same
    weights in its layers of equal shape."""
    a = build(tmp_path, "simsiam", 4)
    b = build(tmp_path, "simsiam", 4, "model.proj_final_bn=false")
    assert same(weights(a.encoder.backbone), weights(b.encoder.backbone))
    assert torch.equal(a.encoder.projector[0].weight, b.encoder.projector[0].weight)


def test_different_seeds_give_different_initial_weights(tmp_path):
    a, b = build(tmp_path, "simsiam", 0), build(tmp_path, "simsiam", 1)
    assert not torch.equal(a.encoder.backbone.state_dict()[next(iter(weights(a.encoder.backbone)))],
                           b.encoder.backbone.state_dict()[next(iter(weights(b.encoder.backbone)))])
    assert not same(weights(a.encoder.projector), weights(b.encoder.projector))
    assert not same(weights(a.predictor), weights(b.predictor))


def test_two_methods_with_one_seed_see_the_same_first_views(tmp_path):
    """The trainer draws the views after the build from a stream seeded by the seed alone: SimSiam's and
    CENTER's (no predictor) first views are equal for one seed although their heads drew different amounts."""
    from siamlab.engine.trainer import Trainer

    views = {}
    for method in ("simsiam", "center"):
        tr = Trainer(cfg_for(tmp_path, method, 5, "eval.online_probe=false", "data.augment=noise"))
        try:
            idx = torch.arange(16)
            views[method] = [v.clone() for v in tr._views(idx, idx)]
        finally:
            tr.release()
    assert all(torch.equal(a, b) for a, b in zip(views["simsiam"], views["center"]))
    assert not torch.equal(views["simsiam"][0], views["simsiam"][1])
