"""Optimizers: SGD with momentum, AdamW, and LARS (You et al. 2017) as used by BYOL / BRIDGE."""
from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio.

    For each parameter w with gradient g (weight decay folded in: g ← g + wd·w), the update uses
    g ← g · η‖w‖/‖g‖ when both norms are positive and the parameter is not excluded; biases and
    normalization parameters (ndim ≤ 1) are excluded from both weight decay and adaptation, as in
    BYOL and BRIDGE §5.1.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), g.norm()
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    g = g * trust
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss


def build_optimizer(param_groups: list[dict], optim_cfg, peak_lr: float) -> torch.optim.Optimizer:
    """One optimizer over the method's parameter groups; each group remembers its peak lr in ``base_lr``."""
    groups = []
    for g in param_groups:
        g = dict(g)
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if not g["params"]:
            continue
        g.setdefault("fixed_lr", False)
        g["base_lr"] = peak_lr
        g["lr"] = peak_lr
        groups.append(g)
    if optim_cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=peak_lr, momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay)
    if optim_cfg.name == "lars":
        return LARS(groups, lr=peak_lr, momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay, eta=optim_cfg.lars_eta)
    return torch.optim.AdamW(groups, lr=peak_lr, weight_decay=optim_cfg.weight_decay)
