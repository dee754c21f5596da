"""siamlab.Monitor in a plain PyTorch loop: the engine's numbers on the same tensors, files analyze reads,
one warning when the verdict turns; the README's example as written; the Lightning callback."""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import siamlab
from siamlab import config
from siamlab.analysis.live import LiveDiagnostics
from siamlab.analysis.report import analyze
from siamlab.engine.build import build_run, seed_everything
from siamlab.interop.monitor import AbsentDiagnosticsWarning, CollapseWarning, Monitor, NormalizationWarning
from siamlab.methods import Forward

ROOT = Path(__file__).resolve().parents[1]
TOY = ["data.name=blobs", "model.backbone=mlp", "model.width=32", "model.proj_hidden=32", "model.proj_out=16"]


def method_and_views(overrides):
    cfg = config.load(None, TOY + overrides)
    seed_everything(0)
    train_ds, _, augment, method = build_run(cfg, torch.device("cpu"))
    idx = torch.arange(64)
    return method, augment.views(train_ds.x[:64], idx, 2), idx


@pytest.mark.parametrize("overrides", [["method.name=simsiam", "method.predictor=linear_bias"],
                                       ["method.name=simclr", "method.tau=0.2"],
                                       ["method.name=byol", "method.predictor=mlp"]])
def test_monitor_numbers_equal_the_engines_on_the_same_tensors(tmp_path, overrides):
    method, views, idx = method_and_views(overrides)
    engine = LiveDiagnostics(method, 1)  # what the trainer logs
    step = {}  # BYOL's loss also reads the EMA teacher's outputs: the user's loss closes over them

    def loss_fn(z, p):
        return method.total_loss(step["out"].replace(z=z, p=p)).loss

    mon = Monitor(tmp_path, every=1, loss_fn=loss_fn,
                  frame=method.gradient_frame, predictor=method.predictor, projector=method.encoder.projector,
                  temperature=getattr(method.params, "tau", None))
    out = step["out"] = method(views, idx)
    expected = engine(out, 3)
    got = mon.log(3, out.z, out.p)
    label_free = {"rankme", "alpha_req", "lidar"}  # the Monitor's own: the engine has them at evaluations
    assert set(got) == set(expected) | label_free and "eta_star" in got and "center_pre_bn" in got
    assert {k: got[k] for k in expected} == expected  # the same code on the same tensors: identical, not just close
    mon.close()


def test_default_frame_is_simsiams():
    """The default frame gives SimSiam's basic-part coefficient 1: for its loss G = Z_b (ZHANG eq. 3/4)."""
    from siamlab.analysis.gradients import anchor_gradient
    from siamlab.analysis.metrics import unit
    from siamlab.losses.cosine import simsiam_loss

    from siamlab.interop.monitor import _LoopMethod

    z = [torch.randn(8, 5), torch.randn(8, 5)]
    p = [torch.randn(8, 5), torch.randn(8, 5)]
    shim = _LoopMethod(lambda z, p: simsiam_loss(p[0], p[1], z[0], z[1]), None, None, None, None)
    g, _, frame = anchor_gradient(shim, Forward(z=z, p=p))
    assert frame.anchor == ("p", 0) and frame.basic == ("p", 1)
    torch.testing.assert_close(g, unit(z[1]))  # −∂L/∂P_a · 2M = Z_b, computed independently


def test_plain_loop_writes_metrics_that_analyze_reads_and_warns_once(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
    data = torch.randn(256, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Monitor(tmp_path / "loop", every=2, name="plain loop") as mon:
            for step in range(20):
                x = data[torch.randint(0, 256, (64,))]
                z = [net(x + 0.1 * torch.randn_like(x)) for _ in range(2)]
                if step >= 10:  # the network "collapses": every output the same vector
                    z = [torch.ones(64, 8) + 0 * v for v in z]
                mon.log(step, z, loss=float(step))
    turns = [w for w in caught if issubclass(w.category, CollapseWarning)]
    assert len(turns) == 1 and "'not collapsed' to 'collapsed'" in str(turns[0].message)
    records = [json.loads(line) for line in (tmp_path / "loop" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "diag"] == list(range(0, 20, 2))
    assert not any("eta_star" in r for r in records)  # no loss_fn: no gradient decomposition
    assert [r["loss"] for r in records if r["kind"] == "train"] == [float(s) for s in range(0, 20, 2)]
    events = [r for r in records if r["kind"] == "event"]
    assert len(events) == 1 and events[0]["verdict"] == "collapsed" and events[0]["step"] == 12  # median of the logs at 8, 10, 12
    res = analyze(tmp_path / "loop")
    assert res["verdict"]["verdict"] == "collapsed" and res["final_diag"]["m_o"] == pytest.approx(1.0)
    assert "plain loop" in res["text"] and any(p.endswith("collapse.png") for p in res["plots"])
    assert json.loads((tmp_path / "loop" / "summary.json").read_text())["status"] == "completed"
    rows = (tmp_path / "loop" / "metrics.csv").read_text().splitlines()  # the run's loggers, fed from the same records
    assert rows[0] == "kind,step,epoch,name,value" and sum(r.startswith("diag,14,0.0,m_o,") for r in rows) == 1


def test_the_warning_shows_the_evidence_of_the_verdict_it_announces(tmp_path):
    """A collapse of P shows √d·std(P) and m_r(P); a dimensional collapse shows the effective rank and its
    threshold (the text of siamlab.analysis.verdict.explain), not only Z's std and m_r."""
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Monitor(tmp_path / "p", every=1) as mon:
            for step in range(8):
                z = [torch.randn(64, 16) for _ in range(2)]
                p = [torch.ones(64, 16) for _ in range(2)] if step >= 3 else [torch.randn(64, 16) for _ in range(2)]
                mon.log(step, z, p)
        with Monitor(tmp_path / "dim", every=1) as mon:
            mon.log(0, [torch.randn(64, 16) for _ in range(2)])
            line = torch.randn(200, 1) * torch.randn(1, 16)  # spread along one direction only
            mon.log_features(1, {"projector": line}, torch.arange(200) % 10, 10)
            mon.log(1, [torch.randn(64, 16) for _ in range(2)])
    texts = [str(w.message) for w in caught if issubclass(w.category, CollapseWarning)]
    assert len(texts) == 2, texts
    assert "to 'collapsed (predictor output P)'" in texts[0] and "√d·std(P)=0" in texts[0] and "m_r(P)=" in texts[0]
    assert "to 'dimensional collapse'" in texts[1] and "effective rank=1 (needs ≥ 8, d=16, K=10)" in texts[1]


def readme_python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_monitor_example_runs_as_written(tmp_path, monkeypatch):
    """The README's plain-PyTorch example, exactly as printed, then `siamlab analyze` on what it wrote."""
    (code,) = [b for b in readme_python_blocks() if "siamlab.Monitor(" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    res = analyze("runs/my-loop")
    assert res["verdict"]["verdict"] == "not collapsed"
    for key in ("m_r", "eta_star", "grad_basic_cos", "bias_center_cos", "center_post_bn"):
        assert key in res["final_diag"], key
    from siamlab.cli import main

    assert main(["analyze", "runs/my-loop"]) == 0


def views(seed: int, m: int = 64, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    z = [torch.randn(m, d, generator=g) for _ in range(2)]
    return z, [v + 0.5 * torch.randn(m, d, generator=g) for v in z]


def simsiam_with(normalize):
    def loss_fn(z, p):
        return -0.5 * ((normalize(p[0]) * normalize(z[1]).detach()).sum(1).mean()
                       + (normalize(p[1]) * normalize(z[0]).detach()).sum(1).mean())
    return loss_fn


def caught_while(fn) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return caught


@pytest.mark.parametrize("hidden", ["F.normalize", "F.cosine_similarity"])
def test_a_loss_normalizing_out_of_sight_is_said_once_and_an_l2n_loss_is_not(tmp_path, hidden):
    """Issue 22 (found 3, build 2): the same loop, SimSiam's loss with siamlab.l2n and with a normalization the Monitor does not see
    (F.cosine_similarity is how lightly's NegativeCosineSimilarity normalizes). With l2n, G = Z_b (ZHANG eq. 4, up
    to the frame's scale), so grad_rms = 1; out of sight, G is Z_b's part tangent to the sphere at P_a, whose rms is
    sqrt(mean(1 - cos²(P_a, Z_b))), computed here by hand."""
    import torch.nn.functional as F

    unseen = {"F.normalize": simsiam_with(lambda x: F.normalize(x, dim=1)),
              "F.cosine_similarity": lambda z, p: -0.5 * (F.cosine_similarity(p[0], z[1].detach()).mean()
                                                          + F.cosine_similarity(p[1], z[0].detach()).mean())}[hidden]
    runs = {}
    for name, loss_fn in (("l2n", simsiam_with(siamlab.l2n)), (hidden, unseen)):
        mon = Monitor(tmp_path / name.replace(".", "_"), every=1, loss_fn=loss_fn)
        logged = []
        caught = caught_while(lambda: logged.extend(mon.log(step, *views(step)) for step in range(3)))
        mon.close()
        runs[name] = (logged, [w for w in caught if issubclass(w.category, NormalizationWarning)], mon)
    logged, said, mon = runs["l2n"]
    assert said == [] and mon.notes == [] and [v["grad_rms"] for v in logged] == pytest.approx([1.0] * 3)
    logged, said, mon = runs[hidden]
    assert len(said) == 1 and "siamlab.l2n" in str(said[0].message) and "normalized tensors" in str(said[0].message)
    for step, vals in enumerate(logged):
        z, p = views(step)
        cos = F.cosine_similarity(p[0].double(), z[1].double())
        assert vals["grad_rms"] == pytest.approx(float((1 - cos ** 2).mean().sqrt()), rel=1e-6)
    out = tmp_path / hidden.replace(".", "_")
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"event"' in x]
    assert [e["event"] for e in events] == ["hidden normalization"] and events[0]["step"] == 0
    assert json.loads((out / "summary.json").read_text())["notes"] == [str(said[0].message)]


def test_a_loss_that_does_not_normalize_is_not_flagged(tmp_path):
    from siamlab.losses.barlow import barlow_twins_loss

    mon = Monitor(tmp_path, every=1, loss_fn=lambda z, p: barlow_twins_loss(z[0], z[1]))
    caught = caught_while(lambda: [mon.log(step, views(step)[0]) for step in range(2)])
    assert not [w for w in caught if issubclass(w.category, NormalizationWarning)] and mon.notes == []


def test_the_absent_diagnostics_are_said_once_with_why(tmp_path):
    projector = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))  # ends in a Linear
    mon = Monitor(tmp_path / "a", every=1, projector=projector)
    x = torch.randn(64, 8)
    caught = caught_while(lambda: [mon.log(step, [projector(x), projector(x + 0.1)]) for step in range(3)])
    (said,) = [str(w.message) for w in caught if issubclass(w.category, AbsentDiagnosticsWarning)]
    assert mon.close()["absent"] == mon.absent and said.startswith("siamlab.Monitor does not log ")
    assert mon.absent == {
        "p_std_scaled, p_m_o, p_m_r, loss_on_p": "no predictor outputs p were passed to Monitor.log",
        "center_pre_bn, center_post_bn": "the projector ends in Linear, not a BatchNorm (CENTER Fig. 5 needs a final BN)",
        "bias_center_cos": "no predictor= was given to the Monitor",
        "wp_symmetry, wp_diag_share, wp_fft_rel": "no predictor= was given to the Monitor",
        "gradient decomposition (grad_rms, eta_star, cos_*)": "no loss_fn= was given to the Monitor",
        "lambda_entropy": "no temperature= was given to the Monitor"}
    assert all(f"{k} ({why})" in said for k, why in mon.absent.items())
    # everything given (SimCLR: no predictor by design): only the predictor's diagnostics are absent
    method, views2, idx = method_and_views(["method.name=simclr", "method.tau=0.2"])
    step = {}
    mon = Monitor(tmp_path / "b", every=1, loss_fn=lambda z, p: method.total_loss(step["out"].replace(z=z, p=p)).loss,
                  frame=method.gradient_frame, projector=method.encoder.projector, temperature=0.2)
    step["out"] = method(views2, idx)  # the forward pass after the Monitor is made: its final BN is seen
    mon.log(0, step["out"].z)
    assert set(mon.absent) == {"p_std_scaled, p_m_o, p_m_r, loss_on_p", "bias_center_cos", "wp_symmetry, wp_diag_share, wp_fft_rel"}
    mon.close()


def test_monitor_rejects_every_zero(tmp_path):
    with pytest.raises(ValueError, match="every=0"):
        Monitor(tmp_path, every=0)


def fit_with_callback(tmp_path, loggers):
    """A tiny SimSiam LightningModule trained 2 epochs (16 steps) with the callback (every=4) and ``loggers``;
    returns the metrics.jsonl records of the callback's Monitor."""
    pl = pytest.importorskip("lightning", reason="lightning is not installed (optional: pip install 'siamlab[lightning]')")
    from siamlab.interop.lightning import SiamlabCallback
    from siamlab.losses.cosine import simsiam_loss

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8), nn.BatchNorm1d(8))
            self.pred = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8))

        def training_step(self, batch, batch_idx):
            (x,) = batch
            z = [self.enc(x + 0.1 * torch.randn_like(x)) for _ in range(2)]
            p = [self.pred(v) for v in z]
            return {"loss": simsiam_loss(p[0], p[1], z[0], z[1]), "z": z, "p": p}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(256, 8)), batch_size=32)
    cb = SiamlabCallback(tmp_path / "pl", every=4, loss_fn=lambda z, p: simsiam_loss(p[0], p[1], z[0], z[1]))
    trainer = pl.Trainer(max_epochs=2, callbacks=[cb], accelerator="cpu", logger=loggers, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         log_every_n_steps=1)
    trainer.fit(Tiny(), loader)
    records = [json.loads(x) for x in (tmp_path / "pl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "diag"] == [4, 8, 12, 16]
    assert all("eta_star" in r and "m_r" in r and "rankme" in r and "lidar" in r for r in records if r["kind"] == "diag")
    assert analyze(tmp_path / "pl")["verdict"]["verdict"] in ("collapsed", "not collapsed")
    assert os.path.isfile(tmp_path / "pl" / "summary.json") and os.path.isfile(tmp_path / "pl" / "metrics.csv")
    return records


def test_lightning_callback_without_trainer_loggers_writes_siamlabs_files(tmp_path):
    fit_with_callback(tmp_path, False)
    assert (tmp_path / "pl" / "tensorboard").is_dir()  # its own TensorBoard run: the trainer has none


def test_lightning_callback_scalars_go_through_the_trainers_loggers(tmp_path):
    """Issue 22 (found 4, build 3): the diagnostics reach trainer.loggers (here Lightning's CSVLogger and TensorBoardLogger) as
    siamlab/<name> at the Monitor's steps with the Monitor's values, and TensorBoard shows one run, not two."""
    import csv

    pytest.importorskip("lightning", reason="lightning is not installed (optional: pip install 'siamlab[lightning]')")
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loggers = [CSVLogger(tmp_path / "csv", name="run"), TensorBoardLogger(tmp_path / "tb", name="run")]
    diag = {r["step"]: r for r in fit_with_callback(tmp_path, loggers) if r["kind"] == "diag"}
    with open(loggers[0].log_dir + "/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("siamlab/m_r")]
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16]
    for r in rows:
        for key in ("m_r", "std_scaled", "eta_star", "grad_rms", "p_m_o"):
            assert float(r[f"siamlab/{key}"]) == pytest.approx(diag[int(r["step"])][key], rel=1e-6), key
    acc = EventAccumulator(loggers[1].log_dir)
    acc.Reload()
    m_r = acc.Scalars("siamlab/m_r")
    assert [e.step for e in m_r] == [4, 8, 12, 16] and m_r[-1].value == pytest.approx(diag[16]["m_r"], rel=1e-6)
    assert not (tmp_path / "pl" / "tensorboard").exists()  # no second TensorBoard run beside the trainer's


def test_monitor_logs_the_label_free_measures_of_the_views_it_is_given(tmp_path):
    """rankme / alpha_req of view 0 and LiDAR over the views (samples = surrogate classes), as the pure
    functions compute them; one view: no LiDAR; log_features: rankme_<name> / alpha_req_<name>."""
    from siamlab.analysis import labelfree as LF

    g = torch.Generator().manual_seed(0)
    base = torch.randn(96, 12, generator=g)
    z = [base + 0.3 * torch.randn(96, 12, generator=g) for _ in range(3)]
    with Monitor(tmp_path / "m", every=1) as mon:
        got = mon.log(0, z)
        one = mon.log(1, z[:1])
        feats = mon.log_features(2, {"projector": base})
    assert got["rankme"] == LF.rankme(z[0]) and got["alpha_req"] == LF.alpha_req(z[0])
    assert got["lidar"] == LF.lidar(torch.stack(z, dim=1)) and 1.0 < got["lidar"] <= 12.0
    assert "lidar" not in one and "rankme" in one
    assert feats["rankme_projector"] == pytest.approx(LF.rankme(base)) and "alpha_req_projector" in feats
    rows = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lidar"] for r in rows if r["kind"] == "diag" and "lidar" in r] == [got["lidar"]]
