"""Learning-rate schedules: linear warm-up then cosine decay (or constant), evaluated per step."""
from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float, schedule: str = "cosine", final: float = 0.0) -> float:
    """lr at optimizer step ``step`` (0-based).

    Warm-up: peak·(step+1)/warmup_steps for step < warmup_steps (linear, reaching ``peak`` at the
    last warm-up step). Then ``cosine``: final + (peak − final)·½(1 + cos(π·t)) with
    t = (step − warmup)/(total − warmup) ∈ [0, 1]; or ``constant``: peak.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def effective_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule used by SimSiam and ZHANG A.1: lr = base × batch / 256."""
    return base_lr * batch_size / 256.0
