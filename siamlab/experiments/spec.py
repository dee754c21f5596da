"""The declarative description of one paper experiment: arms, scales, claims, figures.

An :class:`Experiment` is data. Its arms are config overrides on top of a base config and a scale
preset; its claims are verdict rules written before any result was seen (see :mod:`.rules`); its
figures name what to plot. :mod:`.runner` turns it into runs, tables, figures and a report. To
adapt an experiment, copy it from its paper module (``papers/zhang.py``, ``papers/center.py``, ``papers/gen.py``,
``papers/bridge.py``) and change the dicts.

Config overrides are nested dicts in the layout of :class:`siamlab.config.RunConfig`
(``{"method": {"name": "byol", "params": {"momentum": 0.99}}, "optim": {"epochs": 5}}``); they are
merged in this order: scale preset (by data kind, :mod:`.scales`) → experiment base → experiment
scale override → arm → arm scale override → seed; ``siamlab reproduce --set`` overrides come last.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional

SCALES = ("tiny", "smoke", "paper")


@dataclass
class Arm:
    """One configuration of an experiment (a row of the paper's table or a curve of its figure).

    label:     row label, as in the paper ("SimSiam", "Mirror SimSiam", "τ = 0.1").
    overrides: nested config dict merged over the experiment's config.
    paper:     the paper's reported values for this row, by column key ("knn": 66.62, "collapse": "no").
    x:         the value of the swept variable for sweep plots (τ, d, momentum, ...), or None.
    group:     arms sharing a group are compared together (e.g. the dataset in CENTER Fig. 3).
    scale_overrides: scale -> overrides applied after ``overrides`` (e.g. a projector shrunk for smoke).
    run:       None for an arm that trains a network (``overrides`` are config overrides), or a module-level
               function ``run(params, seed) -> (summary, history)`` for an arm whose run is a computation of its
               own (GEN Fig. 2's points optimized on the sphere): ``params`` is the arm's merged dict (experiment
               base → scale override → arm → arm scale override; no scale preset), its training length in
               ``optim.steps`` and its log interval in ``diag.every_steps``; ``summary`` is what summary.json holds
               (``status``, ``final`` scalars ...), ``history`` the rows of metrics.jsonl. A module-level function,
               so that a worker process of ``reproduce --jobs`` can import it by name.
    """

    label: str
    overrides: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)
    x: Optional[float] = None
    group: str = ""
    scale_overrides: dict = field(default_factory=dict)
    run: Optional[Callable] = None


@dataclass
class Column:
    """A measured quantity shown in the results table; ``key`` names a measure of :mod:`.measures`."""

    key: str
    title: str
    digits: int = 2


@dataclass
class Claim:
    """One finding of the paper, with the rule that decides whether it reproduced.

    rule(results) -> (state, explanation): True (held), False (did not), None (not run: a run did not
    happen, a diagnostic is missing) or ``"undecidable"`` (the data cannot decide it at this scale,
    :mod:`.gates`). Rules come from :mod:`.rules`.

    kind: "claim" (a finding of the paper: counted as reproduced / not reproduced / undecidable) or
    "sanity" (a check that holds by construction, e.g. the entropy of a softmax rising with its
    temperature: reported as a labelled sanity check, never counted as a reproduction).
    """

    text: str
    arms: list
    rule: Callable
    kind: str = "claim"


@dataclass
class Figure:
    """A figure to draw: ``kind`` selects a function of :mod:`siamlab.report.plots`.

    kinds: "curve" (a metric against epochs, one line per arm, shaded seed spread), "sweep" (a
    measure against the arms' x), "bars" (a measure per arm), "scatter_fit" (measure y against
    measure x over arms with a least-squares line), "trajectory" (two eval metrics against each
    other over training), "eta_scan", "heatmap" (matrices saved by a probe).
    """

    kind: str
    file: str
    caption: str
    params: dict = field(default_factory=dict)


@dataclass
class Experiment:
    id: str
    paper: str  # paper key (ZHANG, CENTER, GEN, BRIDGE)
    item: str  # "Table 2 / Fig. 8, architectures"
    expected: str  # the expected verdict, in words (SPEC §4)
    arms: list
    claims: list
    columns: list
    base: dict = field(default_factory=dict)
    scale_overrides: dict = field(default_factory=dict)  # scale -> nested overrides
    seeds: dict = field(default_factory=lambda: {"tiny": 1, "smoke": 1, "paper": 1})
    figures: list = field(default_factory=list)
    data_kind: str = "image"  # "image" (digits/Fashion-MNIST/CIFAR) or "vector" (toy blobs/moons)
    smoke_minutes: float = 5.0  # estimated smoke-scale time on a 2-core CPU
    probe: Optional[str] = None  # name of a post-run probe in .probes (correlation matrix, W_p)
    sweep: str = ""  # name of the swept variable for sweep plots ("τ", "d", "momentum")
    notes: dict = field(default_factory=dict)  # scale -> text shown in the report (settings, caveats)
    arms_by_scale: dict = field(default_factory=dict)  # scale -> arms replacing ``arms`` at that scale
    budget: float = 1.0  # training length multiplier of every arm (``reproduce --budget``): set by :func:`.scales.budgeted`

    def arms_for(self, scale: str) -> list:
        return self.arms_by_scale.get(scale, self.arms)

    def arm(self, label: str, scale: str = "") -> Arm:
        for a in self.arms_for(scale) + self.arms:
            if a.label == label:
                return a
        raise KeyError(label)


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; ``over`` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
