"""All runs of one experiment, with per-arm statistics over seeds (what the claim rules read)."""
from __future__ import annotations

import math
from typing import Optional

from . import measures
from .measures import RunRecord


def mean_std(values: list) -> tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (0 for a single value); (None, None) for no values."""
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var)


class Results:
    def __init__(self, experiment, records: list, scale: str = ""):
        self.experiment = experiment
        self.records: list[RunRecord] = list(records)
        self.scale = scale
        self.arms = experiment.arms_for(scale)

    def labels(self) -> list[str]:
        return [a.label for a in self.arms]

    def runs(self, label: str) -> list[RunRecord]:
        return [r for r in self.records if r.label == label]

    def ran(self, label: str) -> bool:
        return any(r.ran for r in self.runs(label))

    def why_not_run(self, label: str) -> str:
        msgs = sorted({r.message or r.status for r in self.runs(label) if not r.ran})
        return "; ".join(msgs) or "no run"

    def values(self, label: str, measure: str) -> list[float]:
        out = []
        for r in self.runs(label):
            v = measures.value(r, measure)
            if v is not None:
                out.append(v)
        return out

    def mean(self, label: str, measure: str) -> Optional[float]:
        return mean_std(self.values(label, measure))[0]

    def stats(self, label: str, measure: str) -> dict:
        vals = self.values(label, measure)
        m, s = mean_std(vals)
        return {"mean": m, "std": s, "n": len(vals), "values": vals}

    def series(self, label: str, measure: str) -> list[list[tuple[float, float]]]:
        """One (epoch, value) series per seed."""
        return [measures.series(r, measure) for r in self.runs(label) if r.ran]

    def x(self, label: str) -> Optional[float]:
        return self.experiment.arm(label, self.scale).x

    def missing(self, labels: list, measure: str) -> Optional[str]:
        """Why a rule over these arms cannot be decided (an arm did not run or lacks the measure)."""
        for lab in labels:
            if not self.ran(lab):
                return f"'{lab}' not run ({self.why_not_run(lab)})"
            if measure and not self.values(lab, measure):
                return f"'{lab}' has no value for {measure} (diagnostic not logged)"
        return None
