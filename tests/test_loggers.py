"""Loggers beside metrics.jsonl: CSV and TensorBoard written from the same records and readable; W&B offline."""
from __future__ import annotations

import csv
import json
import math
import threading
import time

import pytest

from siamlab import config
from siamlab.engine.loggers import CsvLog, build_loggers, scalars
from siamlab.engine.runlog import LoggerThread, MetricsLog, read_metrics
from siamlab.errors import ConfigError

TOY = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=32", "model.proj_hidden=32",
       "model.proj_out=16", "optim.batch_size=64", "optim.epochs=2", "engine.progress=false", "diag.every_steps=2"]


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def jsonl_scalars(records):
    """(kind, step, name) -> value of every number in metrics.jsonl, computed here independently of the loggers."""
    out = {}
    for r in records:
        kind = r["kind"] + ("_random_init" if r.get("random_init") else "")
        for k, v in r.items():
            if k in ("kind", "step", "epoch", "random_init") or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)) or v in ("nan", "inf", "-inf"):
                out[(kind, r["step"], k)] = float(v)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from siamlab.engine.trainer import train

    out = tmp_path_factory.mktemp("loggers")
    cfg = config.load(None, TOY + [f"engine.out={out}", "engine.run_name=r"])
    assert cfg.engine.loggers == ["csv", "tensorboard"]  # the default
    assert train(cfg).summary["status"] == "completed"
    return out / "r"


def test_csv_holds_every_scalar_of_metrics_jsonl(run):
    want = jsonl_scalars(read_metrics(run / "metrics.jsonl"))
    rows = csv_rows(run / "metrics.csv")
    got = {(r["kind"], int(r["step"]), r["name"]): float(r["value"]) for r in rows}
    assert len(rows) == len(got) == len(want) > 50
    assert got.keys() == want.keys()
    for key, v in want.items():
        assert got[key] == v or (math.isnan(v) and math.isnan(got[key])), key
    assert {k[0] for k in got} == {"train", "diag", "eval", "eval_random_init"}


def test_tensorboard_event_files_are_readable(run):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (optional: pip install 'siamlab[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    want = jsonl_scalars(read_metrics(run / "metrics.jsonl"))
    assert tags == {f"{kind}/{name}" for kind, _, name in want}
    for tag in ("train/loss", "diag/m_r", "eval/knn_backbone", "eval_random_init/knn_backbone"):
        kind, name = tag.split("/")
        events = acc.Scalars(tag)
        expected = sorted((step, v) for (k, step, n), v in want.items() if (k, n) == (kind, name))
        assert [e.step for e in events] == [step for step, _ in expected]
        assert [e.value for e in events] == pytest.approx([v for _, v in expected], rel=1e-6)  # event files hold float32


def test_scalars_drop_text_and_keep_non_finite():
    kind, step, epoch, vals = scalars({"kind": "event", "step": 3, "epoch": 0.5, "event": "verdict", "ok": True,
                                       "loss": "nan", "x": 2, "y": "inf"})
    assert (kind, step, epoch) == ("event", 3, 0.5)
    assert set(vals) == {"loss", "x", "y"} and math.isnan(vals["loss"]) and vals["y"] == math.inf


def test_a_slow_logger_does_not_slow_the_writer(tmp_path):
    """MetricsLog.write only queues the record: a logger blocked on I/O never holds up the training step."""
    gate = threading.Event()

    class Blocked:
        seen = []

        def write(self, rec):
            gate.wait(10)
            self.seen.append(rec["step"])

        def close(self):
            pass

    blocked = Blocked()
    log = MetricsLog(tmp_path / "metrics.jsonl", loggers=[blocked])
    for step in range(100):
        log.write("train", step, 0.0, loss=1.0)  # returns although the logger is stuck
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 100 and blocked.seen == []
    gate.set()
    log.close()  # drains the queue
    assert blocked.seen == list(range(100))


def test_a_failing_logger_is_switched_off_and_training_goes_on(tmp_path, capsys):
    class Broken:
        def write(self, rec):
            raise OSError("disk full")

        def close(self):
            pass

    t = LoggerThread([Broken(), CsvLog(tmp_path / "m.csv")])
    for step in range(3):
        t.put({"kind": "train", "step": step, "epoch": 0.0, "loss": 1.0})
    t.close()
    assert "Broken failed (OSError: disk full); it is switched off" in capsys.readouterr().err
    assert [r["step"] for r in csv_rows(tmp_path / "m.csv")] == ["0", "1", "2"]


def test_unknown_logger_is_one_sentence(tmp_path):
    assert config.load(None, ["engine.loggers=[]"]).engine.loggers == [] and build_loggers([], tmp_path) == []
    with pytest.raises(ConfigError, match=r"engine.loggers=\['csv', 'tensorbord'\] is not valid: expected a list of csv, tensorboard, wandb"):
        config.load(None, ["engine.loggers=[csv, tensorbord]"])


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = CsvLog(tmp_path / "m.csv")
    for step in range(10):
        log.write({"kind": "train", "step": step, "epoch": 0.0, "loss": float(step)})
    log.close()
    with open(tmp_path / "m.csv", "a") as f:
        f.write("train,1")  # a row cut short by a kill
    CsvLog(tmp_path / "m.csv", resume_step=4).close()
    assert [int(r["step"]) for r in csv_rows(tmp_path / "m.csv")] == [0, 1, 2, 3, 4]


def test_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (optional: pip install 'siamlab[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    (lg,) = build_loggers(["wandb"], tmp_path, config={"method": {"name": "simsiam"}})
    t = LoggerThread([lg])
    t.put({"kind": "train", "step": 10, "epoch": 0.1, "loss": 0.123456})
    t.put({"kind": "diag", "step": 10, "epoch": 0.1, "m_r": 0.987654})
    t.close()
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    (data,) = list(tmp_path.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    texts = (b"train/loss", b"0.123456", b"diag/m_r", b"0.987654")
    for _ in range(100):  # the W&B service process may still be writing the file after finish() returned
        if all(t in data.read_bytes() for t in texts):
            break
        time.sleep(0.1)
    blob = data.read_bytes()
    for text in texts:
        assert text in blob, text


def test_missing_tensorboard_is_noted_once_per_process(tmp_path, capsys, monkeypatch):
    from siamlab.engine import loggers

    monkeypatch.setattr(loggers, "installed", lambda module: False)
    monkeypatch.setattr(loggers, "_NOTED", set())
    for arm in ("a", "b", "c"):  # an experiment builds loggers for each arm
        (tmp_path / arm).mkdir()
        built = loggers.build_loggers(["csv", "tensorboard"], tmp_path / arm)
        assert [type(x).__name__ for x in built] == ["CsvLog"]
        for x in built:
            x.close()
    assert capsys.readouterr().err.count("tensorboard is not installed") == 1
