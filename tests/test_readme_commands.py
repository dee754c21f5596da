"""Every command shown in the README's bash blocks and in the CLI's help examples runs, at tiny size.

Commands are taken from the files at test time, so a new README line is tested without editing this
file. What is changed to make them tiny (and nothing else):

* ``siamlab train``: overrides that shrink the data, network and epochs (:data:`TINY_TRAIN`) are added
  after the command's own; ``--resume`` only gets ``engine.progress=false`` (a resumed run refuses others);
* ``siamlab reproduce ID`` and ``siamlab atlas NAME``: ``--scale tiny`` (replacing ``--scale smoke|paper``) and a
  temporary ``--out`` (an atlas with ``--jobs 1``); ``siamlab labelfree-validate DIR``: the tiny run ``RUN``'s folder
  instead of DIR, a temporary ``--out`` and 100 bootstrap resamples;
* ``siamlab eval``: ``--linear-epochs 5``; ``siamlab diagnose``: small data subsets;
* ``RUN`` (the placeholder for a run directory) becomes the run README command (1)'s ``siamlab train`` makes
  — the defaults of siamlab/config.py (SimCLR, a ConvNet, Fashion-MNIST) — at tiny size, so the export and
  diagnose examples run on the network a newcomer has; ``configs/...`` paths resolve against the repository
  (so they must exist).

Skipped, with the reason (:data:`SKIP`): the install script (it installs packages; CI runs it), the test
suite itself, and ``torchrun`` launches at scale (tests/test_distributed.py runs torchrun at tiny size).
Anything else that is not a ``siamlab`` command fails the test until it is added to :data:`SKIP`.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from siamlab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["optim.epochs=1", "data.train_subset=256", "data.test_subset=128", "optim.batch_size=64", "model.width=8",
              "model.proj_hidden=32", "model.proj_out=16", "model.pred_hidden=8", "eval.knn_k=10",
              "engine.progress=false", "diag.every_steps=2"]
TINY_DATA = ["data.train_subset=256", "data.test_subset=128", "eval.knn_k=10"]
SKIP = {
    "bash scripts/install.sh": "installs packages (CI runs it before this suite)",
    "python3 -m pytest": "the test suite itself",
    "torchrun": "a multi-GPU launch at scale (tests/test_distributed.py runs torchrun at tiny size)",
}
ORDER = ("train", "eval", "analyze", "export", "diagnose")  # a diagnose example reads what an export wrote


def _commands(text: str) -> list:
    """Shell commands of a block: comments dropped, continuation lines joined, ``&&`` chains split."""
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        for part in line.split("&&"):
            part = part.strip()
            if part and not part.startswith("#"):
                out.append(part)
    return out


def readme_commands() -> list:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [c for b in blocks for c in _commands(b)]


def help_commands() -> list:
    parser = build_parser()
    epilogs = [parser.epilog] + [p.epilog for p in parser._subparsers._group_actions[0].choices.values()]
    return [line.strip() for e in epilogs if e for line in e.splitlines() if line.strip().startswith("siamlab ")]


def _tiny(argv: list, run: Path, out: Path) -> list:
    argv = [str(run) if a == "RUN" else a.replace("RUN/", f"{run}/") for a in argv]
    argv = [str(ROOT / a) if a.startswith("configs/") else a for a in argv]
    cmd = argv[0]
    if cmd == "train":
        extra = ["engine.progress=false"] if "--resume" in argv else TINY_TRAIN
        argv += [x for s in extra for x in ("--set", s)]
    elif cmd == "reproduce" and len(argv) > 1 and not argv[1].startswith("-"):
        if "--scale" in argv:
            del argv[argv.index("--scale"):argv.index("--scale") + 2]
        argv += ["--scale", "tiny", "--out", str(out / f"reproduce-{argv[1]}")]
    elif cmd == "atlas" and len(argv) > 1 and not argv[1].startswith("-"):
        if "--scale" in argv:
            del argv[argv.index("--scale"):argv.index("--scale") + 2]
        argv += ["--scale", "tiny", "--jobs", "1", "--out", str(out / f"atlas-{len(argv)}-{argv[1]}")]
    elif cmd == "labelfree-validate":  # the folders it reads become the tiny run RUN's
        argv = [cmd, str(run.parent), "--out", str(out / "labelfree-validation"), "--bootstrap", "100"]
    elif cmd == "eval" and "--linear" in argv:
        argv += ["--linear-epochs", "5"]
    elif cmd == "diagnose":
        argv += [x for s in TINY_DATA for x in ("--set", s)] + ["--out", str(out / f"diagnose-{len(argv)}")]
    return argv


@pytest.fixture(scope="module")
def tiny_default_run(tmp_path_factory):
    """The run ``RUN`` stands for: README command (1)'s `siamlab train` (the defaults) at tiny size."""
    from siamlab import config

    out = tmp_path_factory.mktemp("readme")
    args = ["train"] + [x for s in TINY_TRAIN + [f"engine.out={out}", "engine.run_name=RUN"] for x in ("--set", s)]
    assert main(args) == 0
    defaults, cfg = config.RunConfig(), config.load(str(out / "RUN" / "config.yaml"))
    assert (cfg.method.name, cfg.model.backbone, cfg.data.name) == (
        defaults.method.name, defaults.model.backbone, defaults.data.name)  # the main job's network and data
    return out / "RUN"


def test_readme_and_help_commands_run_as_written(tiny_default_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # runs/ and exported files land here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for code in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})  # e.g. writes runs/my-loop
    commands = list(dict.fromkeys(readme_commands() + help_commands()))
    siamlab = [list(a) for a in dict.fromkeys(tuple(shlex.split(c, comments=True)[1:]) for c in commands if c.startswith("siamlab "))]
    other = [c for c in commands if not c.startswith("siamlab ")]
    unknown = [c for c in other if not any(c.startswith(k) for k in SKIP)]
    assert not unknown, f"README commands that are neither siamlab nor in SKIP: {unknown}"
    siamlab.sort(key=lambda a: ORDER.index(a[0]) if a[0] in ORDER else len(ORDER))
    assert any(a[0] == "diagnose" for a in siamlab) and any(a[0] == "export" for a in siamlab)
    for argv in siamlab:
        tiny = _tiny(list(argv), tiny_default_run, tmp_path)
        code = main(tiny)
        err = capsys.readouterr().err
        assert code == 0, f"`siamlab {' '.join(argv)}` (run as `siamlab {' '.join(tiny)}`) exited {code}: {err[-600:]}"


def test_readme_error_example_prints_what_the_readme_shows(capsys):
    text = (ROOT / "README.md").read_text()
    examples = re.findall(r"```\n\$ (siamlab [^\n]*)\n(.*?)```", text, re.S)
    assert examples
    for cmd, shown in examples:
        assert main(shlex.split(cmd)[1:]) == 2
        assert capsys.readouterr().err.strip() == shown.strip()


def test_help_runs_from_the_console_script():
    for args in (["--help"], ["train", "--help"], ["diagnose", "--help"], ["export", "--help"]):
        r = subprocess.run([sys.executable, "-m", "siamlab", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "examples:" in r.stdout, r.stderr
    assert "SimCLR" in build_parser().epilog  # the default method (siamlab/config.py) is what the help says


def test_help_examples_name_config_files_that_exist():
    for cmd in help_commands() + readme_commands():
        for arg in shlex.split(cmd, comments=True):
            if arg.startswith("configs/"):
                assert (ROOT / arg).is_file(), f"{cmd!r} names a missing config {arg}"


def test_pyproject_caps_no_torch_and_torch_2_13_satisfies_every_requirement():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    torch_req = next(r for r in reqs if r.name == "torch")
    assert not any(s.operator in ("<", "<=", "==", "~=") for s in torch_req.specifier), torch_req
    assert torch_req.specifier.contains("2.13.0") and torch_req.specifier.contains("2.20.0")
    extras = project["optional-dependencies"]
    assert {"tensorboard", "wandb", "lightning"} <= set(extras)
    for r in [Requirement(x) for group in extras.values() for x in group]:
        assert r.name != "torch", f"extra requirement {r} must not pin torch"
