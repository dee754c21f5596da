"""Bad input of every kind gets one sentence naming the file or field and the fix, never a traceback (issue 14 item 3, 5)."""
from __future__ import annotations

import json

import pytest

from siamlab import config
from siamlab.cli import main


def one_sentence(argv, capsys) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one ``siamlab: error:`` line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("siamlab: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- item 5: unsafe YAML tags are named as such --------------------------------------------------
UNSAFE = [
    ('optim: !!python/object/apply:os.system ["echo pwned"]\n', "!!python/object/apply"),
    ("optim: !!python/name:os.system\n", "!!python/name"),
    ("optim: !!python/object/new:subprocess.Popen [[ls]]\n", "!!python/object/new"),
    ("optim: !!python/tuple [1, 2]\n", "!!python/tuple"),
]


@pytest.mark.parametrize("text, tag", UNSAFE, ids=[t for _, t in UNSAFE])
def test_unsafe_yaml_tag_in_config_file_is_named(tmp_path, capsys, text, tag):
    p = tmp_path / "evil.yaml"
    p.write_text(text)
    line = one_sentence(["train", str(p)], capsys)
    assert f"the tag {tag}, which siamlab never loads" in line and str(p) in line, line
    assert "not valid YAML" not in line


def test_unknown_local_tag_is_named(tmp_path, capsys):
    p = tmp_path / "odd.yaml"
    p.write_text("optim:\n  lr: !weird 3\n")
    line = one_sentence(["train", str(p)], capsys)
    assert "!weird" in line and "line 2" in line, line


def test_yaml_syntax_error_still_says_not_valid(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("optim: [unclosed\n")
    line = one_sentence(["train", str(p)], capsys)
    assert "not valid YAML" in line and str(p) in line


@pytest.mark.parametrize("item, words", [
    ('phases=!!python/object/apply:os.system ["echo"]', ["--set phases", "!!python/object/apply", "never loads"]),
    ("optim.lr=[1", ["--set optim.lr", "not valid YAML"]),
    ("method.name=simsiam", None),
])
def test_set_values_are_parsed_safely(item, words, capsys):
    if words is None:
        assert config.load(None, [item]).method.name == "simsiam"
        return
    line = one_sentence(["train", "--set", item], capsys)
    for w in words:
        assert w in line, (w, line)


def test_unsafe_tag_in_a_run_config_yaml_is_named(tmp_path, capsys):
    """A run directory's config.yaml is read on --resume, eval and analyze: the same rule holds."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text('engine: !!python/object/apply:os.system ["echo"]\n')
    (run / "metrics.jsonl").write_text("")
    for argv in (["train", "--resume", str(run)], ["eval", str(run)], ["analyze", str(run)]):
        line = one_sentence(argv, capsys)
        assert "!!python/object/apply" in line and "never loads" in line, (argv, line)


# --- item 3: --resume RUN --set key without '=' --------------------------------------------------
def test_resume_set_without_equals_is_one_sentence(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config.dump(config.RunConfig()))
    line = one_sentence(["train", "--resume", str(run), "--set", "engine.progress"], capsys)
    assert "engine.progress" in line and "key=value" in line, line


# --- item 3: a malformed results.json given to `siamlab report` ---------------------------------
@pytest.mark.parametrize("text", [
    "[1, 2, 3]",
    '{"figures": 5}',
    '{"figures": ["a.png"]}',
    '{"claims": [3], "table": "x"}',
    '{"arms": [{"label": "a"}]}',
    '{"runs": [7]}',
    '{"table": [[1, 2]], "rows": [5]}',
    '{"counts": 5}',
    '{"counts": [1]}',
    "{not json",
])
def test_malformed_results_json_is_one_sentence(tmp_path, capsys, text):
    (tmp_path / "results.json").write_text(text)
    line = one_sentence(["report", str(tmp_path)], capsys)
    assert "results.json" in line, line
    assert not (tmp_path / "report.html").exists()


def test_wellformed_minimal_results_json_builds(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"id": "x", "verdict": "reproduced"}))
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").is_file()


def test_hand_edited_claim_fields_of_any_json_type_are_shown_as_text(tmp_path, capsys):
    """A claim's verdict / text / explanation that is null, a number or a list (a hand-edited results.json)
    is shown as text (null as nothing), escaped; a ``reproduced`` that is not a bool colours it as undecided."""
    claims = [{"verdict": None, "text": 3.5, "explanation": None, "reproduced": []},
              {"verdict": 7, "text": ["<b>x</b>"], "explanation": {"a": 1}, "reproduced": {"b": 2}, "kind": "claim"}]
    counts = {"reproduced": "<script>", "not run": None}
    (tmp_path / "results.json").write_text(json.dumps({"id": "x", "verdict": None, "claims": claims, "counts": counts}))
    assert main(["report", str(tmp_path)]) == 0, capsys.readouterr().err
    html = (tmp_path / "report.html").read_text()
    assert "<b></b>: 3.5<br><small></small>" in html and "None" not in html
    assert "<b>7</b>: [&#x27;&lt;b&gt;x&lt;/b&gt;&#x27;]" in html and "{&#x27;a&#x27;: 1}" in html
    assert html.count('<li class="claim-none">') == 2
    assert "<script>" not in html and "<p>&lt;script&gt; reproduced &middot; 0 not reproduced" in html


# --- item 4: `siamlab report` embeds only files inside the experiment folder ---------------------
SECRET = b"root:x:0:0:secret-marker:/root:/bin/bash\n"


def _results_with_figure(folder, name: str) -> None:
    (folder / "results.json").write_text(json.dumps(
        {"id": "x", "verdict": "reproduced", "figures": [{"file": name, "caption": "c", "drawn": True, "why": ""}]}))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink-file", "symlink-dir", "nul"])
def test_figure_outside_the_folder_is_refused_not_embedded(tmp_path, capsys, how):
    import base64

    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    exp = tmp_path / "exp"
    (exp / "figures").mkdir(parents=True)
    name = {"absolute": str(secret), "dotdot": "figures/../../secret.txt", "symlink-file": "figures/f.png",
            "symlink-dir": "linked/secret.txt", "nul": "figures/\x00.png"}[how]
    if how == "symlink-file":
        (exp / "figures" / "f.png").symlink_to(secret)
    if how == "symlink-dir":
        (exp / "linked").symlink_to(tmp_path)
    _results_with_figure(exp, name)
    line = one_sentence(["report", str(exp)], capsys)
    assert "outside the experiment folder" in line, line
    assert not (exp / "report.html").exists()
    html = "".join(p.read_text() for p in exp.rglob("*.html"))
    assert base64.b64encode(SECRET).decode()[:20] not in html


def test_figure_inside_the_folder_is_embedded_and_non_png_is_not(tmp_path):
    import base64

    from siamlab.report.html import PNG_SIGNATURE, build_report

    exp = tmp_path / "exp"
    (exp / "figures").mkdir(parents=True)
    png = PNG_SIGNATURE + b"rest-of-a-png"
    (exp / "figures" / "f.png").write_bytes(png)
    (exp / "figures" / "notes.png").write_bytes(SECRET)  # inside, but not a PNG
    (exp / "results.json").write_text(json.dumps({"figures": [
        {"file": "figures/f.png", "caption": "real", "drawn": True},
        {"file": "figures/sub/../notes.png", "caption": "text", "drawn": True}]}))
    html = build_report(exp).read_text()
    assert base64.b64encode(png).decode() in html
    assert base64.b64encode(SECRET).decode()[:20] not in html and "not a PNG file" in html


# --- issue 21 item 5: the last tracebacks of diagnose, crafted siamlab files and analyze -----------------
TOY_RUN = ["method.name=simsiam", "data.name=blobs", "model.backbone=mlp", "model.width=16", "model.proj_hidden=16",
           "model.proj_out=8", "model.pred_hidden=8", "optim.batch_size=64", "optim.epochs=1", "diag.every_steps=0",
           "eval.knn_k=5", "eval.online_probe=false", "engine.progress=false"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished blobs run (an MLP backbone) and its state_dict export."""
    from siamlab.engine.trainer import train
    from siamlab.interop.export import export_run

    out = tmp_path_factory.mktemp("toy")
    run = train(config.load(None, TOY_RUN + [f"engine.out={out}", "engine.run_name=run"])).run_dir
    (export,) = export_run(run)["files"]
    return run, export


def test_diagnose_a_torchscript_module_that_does_not_fit_the_data(tmp_path, capsys):
    import torch
    from torch import nn

    torch.jit.script(nn.Linear(5, 3)).save(str(tmp_path / "lin5.pt"))
    line = one_sentence(["diagnose", str(tmp_path / "lin5.pt"), "--data", "blobs", "--out", str(tmp_path / "d")], capsys)
    assert "does not run on blobs vectors of shape (2,)" in line and "pass --data" in line, line
    assert not (tmp_path / "d").exists()


def test_diagnose_a_siamlab_network_on_data_of_another_shape(toy_run, tmp_path, capsys):
    _, export = toy_run  # an MLP on 2-D vectors, given 8x8 images
    line = one_sentence(["diagnose", export, "--data", "digits", "--out", str(tmp_path / "d")], capsys)
    assert "does not run on digits images of shape (1, 8, 8)" in line, line


def _crafted_export(toy_run, tmp_path, **changes) -> str:
    import torch

    obj = {**torch.load(toy_run[1], weights_only=True), **changes}
    obj = {k: v for k, v in obj.items() if v is not ...}
    torch.save(obj, tmp_path / "crafted.pt")
    return str(tmp_path / "crafted.pt")


@pytest.mark.parametrize("changes, words", [
    ({"model": ..., "backbone": ..., "projector": ...}, ["without 'model'", "siamlab export RUN --format state_dict"]),
    ({"backbone": ...}, ["without 'backbone'", "state dict"]),
    ({"in_shape": "abc"}, ["'in_shape' is 'abc'", "[D] or [C, H, W]"]),
    ({"in_shape": [0]}, ["'in_shape' is [0]", "positive integers"]),
    ({"backbone": {"net.0.weight": 5}}, ["'backbone' is not the backbone's state dict"]),
    ({"model": 5}, ["'model' is 5", "the model config"]),
    ({"model": {"backbone": "vgg"}}, ["carries a config siamlab cannot read", "model.backbone='vgg'"]),
    ({"projector": [1]}, ["'projector' is [1]"]),
])
def test_crafted_export_files_are_one_sentence(toy_run, tmp_path, capsys, changes, words):
    path = _crafted_export(toy_run, tmp_path, **changes)
    line = one_sentence(["diagnose", path, "--data", "blobs", "--out", str(tmp_path / "d")], capsys)
    assert "crafted.pt" in line, line
    for w in words:
        assert w in line, (w, line)


@pytest.mark.parametrize("where, value", [("config.model", 5), ("config.data", "x"), ("config", [1]), ("method", {"a": 5})])
def test_a_crafted_checkpoint_is_one_sentence_for_every_command(toy_run, tmp_path, capsys, where, value):
    """diagnose, export, eval and --resume each read the checkpoint; a mistyped section is named, never a traceback."""
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    if where == "config.model" or where == "config.data":
        state["config"][where.split(".")[1]] = value
    else:
        state[where] = value
    torch.save(state, run / "checkpoints" / "last.pt")
    for argv in (["diagnose", str(run), "--out", str(tmp_path / "d")], ["export", str(run)], ["eval", str(run)],
                 ["train", "--resume", str(run)]):
        line = one_sentence(argv, capsys)
        assert "last.pt" in line, (argv, line)  # the file named, in one sentence (one_sentence checks the rest)


@pytest.mark.parametrize("summary, words", [
    ({"final": 5}, ["final=5", "not a mapping"]),
    ({"final": [1, 2]}, ["final=[1, 2]"]),
    ({"status": 5}, ["status=5", "not a string"]),
    ({"method": ["a"]}, ["method=['a']"]),
])
def test_analyze_a_summary_with_mistyped_fields(toy_run, tmp_path, capsys, summary, words):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    (run / "summary.json").write_text(json.dumps(summary))
    line = one_sentence(["analyze", str(run)], capsys)
    for w in words + ["summary.json", "restore the file"]:
        assert w in line, (w, line)
