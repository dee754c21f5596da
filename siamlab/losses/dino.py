"""DINO's cross-entropy between a centered, sharpened teacher and the student (Caron et al. 2021 eq. 1-4;
CENTER eq. 29)."""
from __future__ import annotations

import torch


def dino_loss(student: list, teacher: list, center: torch.Tensor, student_temp: float,
              teacher_temp: float) -> torch.Tensor:
    """Mean over ordered view pairs (i ≠ j) and the batch of
    −Σ_k softmax((t_i − C)/τ_t)_k · log softmax(s_j/τ_s)_k, the teacher term stop-gradient.

    ``student`` / ``teacher``: per-view logits [n, K]; ``center`` C: [K] (CENTER eq. 29).
    """
    targets = [torch.softmax((t.detach() - center.detach()) / teacher_temp, dim=-1) for t in teacher]
    log_probs = [torch.log_softmax(s / student_temp, dim=-1) for s in student]
    terms = [-(targets[i] * log_probs[j]).sum(dim=-1).mean()
             for i in range(len(targets)) for j in range(len(log_probs)) if i != j]
    return torch.stack(terms).mean()
