"""Named quantities read from one run: final evaluation metrics, diagnostics and collapse verdicts.

A run is a :class:`RunRecord`: its ``summary.json`` and the rows of its ``metrics.jsonl`` (``kind``
"train" | "diag" | "eval"). Diagnostics are looked up by a list of accepted names (the diagnostics
layer may prefix them with the tensor they were measured on, e.g. ``z/m_o``); a quantity that no row
carries is ``None`` and every table and verdict built on it says "not measured".

Collapse is the run's own verdict (``summary["verdict"]``, :mod:`siamlab.analysis.verdict`: complete
collapse of z, or of P where the loss acts on P; dimensional collapse apart, as ``dim_collapse``), and its
distance from complete collapse in decades, ``collapse_margin`` (what the claims test over seeds).
Fallback when a run has no verdict (older runs): the verdict is recomputed from its metrics history.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

TAIL = 3  # diagnostic rows averaged for an end-of-training value

# measure -> accepted metric names in diag rows (first match wins; "z/" prefixed forms accepted too)
DIAG_KEYS = {
    "std": ["std_scaled", "z_std_scaled", "std_sqrt_d"],
    "std_raw": ["std", "std_normalized", "z_std"],
    "m_o": ["m_o", "z_m_o"],
    "m_r": ["m_r", "z_m_r"],
    "p_std": ["p_std_scaled"],
    "center": ["center_norm", "z_center_norm", "s_norm", "m_o"],  # m_o = ‖mean Z‖ = CENTER's ‖s‖
    "center_pre_bn": ["center_norm_pre_bn", "center_pre_bn", "z_center_norm_pre_bn"],
    "center_post_bn": ["center_norm_post_bn", "center_post_bn", "z_center_norm_post_bn"],
    "cov": ["cov_term", "covariance", "covariance_term", "z_covariance"],
    "eta": ["eta_star", "eta_zero", "eta_crossing"],
    "cos_oe_o": ["cos_oe_o", "cos_o_e_o"],
    "oe_over_o": ["oe_over_o", "o_e_over_o"],
    "cos_re_decor": ["cos_re_decor", "cos_r_e_decor", "decor_cos_r_e"],
    "cos_oe_decor": ["cos_oe_decor", "cos_o_e_decor", "decor_cos_o_e"],
    "entropy": ["lambda_entropy", "infonce_entropy", "entropy_lambda"],
    "bias_center": ["bias_center_cos", "cos_bias_center", "pred_bias_center_cos"],
    "wp_asym": ["wp_symmetry", "wp_asymmetry"],  # ‖W − Wᵀ‖/‖W‖
    "wp_diag": ["wp_diag_share", "wp_diag_dominance"],
    "wp_fft": ["wp_fft_rel", "wp_fft_gap"],
}

# measure -> accepted metric names in eval rows (evaluation on clean test features)
EVAL_KEYS = {
    "knn": ["knn_backbone"],
    "knn_proj": ["knn_projector"],
    "erank": ["erank_projector"],
    "center_proj": ["m_o_projector"],  # ‖mean z/‖z‖‖ of clean projector features (CENTER's ‖s‖ on test images)
    "ncm": ["ncm_backbone"],
    "l_bound": ["l_bound_projector"],
    "l_cor": ["l_cor_projector"],
    "sigma_i": ["sigma_minus_identity_projector", "sigma_i_projector", "corr_identity_projector"],
    "sigma_i_backbone": ["sigma_minus_identity_backbone", "sigma_i_backbone"],
}


@dataclass
class RunRecord:
    label: str
    seed: int
    status: str  # completed | diverged | interrupted | not run | error
    message: str = ""
    run_dir: str = ""
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    probe: dict = field(default_factory=dict)  # scalars from a post-run probe

    @property
    def ran(self) -> bool:
        return self.status in ("completed", "diverged")


def find_key(row: dict, names: list) -> Optional[str]:
    for n in names:
        for k in (n, f"z/{n}", f"z.{n}"):
            if k in row:
                return k
    return None


def _finite(v) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def series(rec: RunRecord, measure: str, kind: str = "") -> list[tuple[float, float]]:
    """(epoch, value) pairs of a measure over training (diag rows, or eval rows for eval measures; the
    random-init evaluation is the eval point at epoch 0)."""
    kind = kind or ("eval" if measure in EVAL_KEYS else "diag")
    names = (EVAL_KEYS if kind == "eval" else DIAG_KEYS).get(measure, [measure])
    out = []
    for row in rec.history:
        if row.get("kind") != kind:
            continue
        if row.get("random_init") and row.get("epoch", 0) != 0:
            continue
        key = find_key(row, names)
        v = _finite(row.get(key)) if key else None
        if v is not None:
            out.append((float(row.get("epoch", 0.0)), v))
    return out


def tail_mean(rec: RunRecord, measure: str) -> Optional[float]:
    s = series(rec, measure)
    if not s:
        return None
    vals = [v for _, v in s[-TAIL:]]
    return sum(vals) / len(vals)


def final_eval(rec: RunRecord, measure: str) -> Optional[float]:
    final = rec.summary.get("final") or {}
    key = find_key(final, EVAL_KEYS.get(measure, [measure]))
    return _finite(final.get(key)) if key else None


def random_init_eval(rec: RunRecord, measure: str) -> Optional[float]:
    ri = rec.summary.get("random_init") or {}
    key = find_key(ri, EVAL_KEYS.get(measure, [measure]))
    return _finite(ri.get(key)) if key else None


def run_verdict(rec: RunRecord) -> dict:
    """The run's verdict dict (``summary["verdict"]``), recomputed from its history when absent."""
    v = rec.summary.get("verdict")
    if isinstance(v, dict) and v:
        return v
    from ..analysis.verdict import verdicts

    return verdicts(rec.history, rec.status)


def collapsed(rec: RunRecord) -> Optional[bool]:
    """Complete collapse of z, or of P where the loss acts on P (the run's verdict, module docstring)."""
    val = run_verdict(rec).get("collapsed")
    return val if isinstance(val, bool) else None


def dimensionally_collapsed(rec: RunRecord) -> Optional[bool]:
    val = run_verdict(rec).get("dimensional")
    return val if isinstance(val, bool) else None


def value(rec: RunRecord, measure: str) -> Optional[float]:
    """End-of-run value of a measure: eval measures from the summary, diagnostics averaged over the tail."""
    if not rec.ran:
        return None
    if measure == "collapse":
        c = collapsed(rec)
        return None if c is None else float(c)
    if measure == "diverged":
        return float(rec.status == "diverged")
    if measure == "collapse_margin":  # decades above complete collapse, negative when collapsed (analysis.verdict)
        from ..analysis.verdict import collapse_margin

        return collapse_margin({**run_verdict(rec), "diverged": rec.status == "diverged" or run_verdict(rec).get("diverged")})
    if measure == "dim_collapse":
        d = dimensionally_collapsed(rec)
        return None if d is None else float(d)
    if measure == "fails":  # collapsed or diverged: ZHANG Table 2 reports Mirror's NaN run as collapse
        c = collapsed(rec)
        return 1.0 if rec.status == "diverged" else (None if c is None else float(c))
    if measure in rec.probe:
        return _finite(rec.probe[measure])
    if measure in EVAL_KEYS:
        return final_eval(rec, measure)
    if measure.endswith("_init"):  # the same network evaluated at random initialization
        return random_init_eval(rec, measure[: -len("_init")])
    if measure.endswith("_first"):
        s = series(rec, measure[: -len("_first")])
        return s[0][1] if s else None
    if measure.endswith("_mean"):  # mean over the whole training
        s = series(rec, measure[: -len("_mean")])
        return sum(v for _, v in s) / len(s) if s else None
    if measure.endswith("_max"):
        s = series(rec, measure[: -len("_max")])
        return max(v for _, v in s) if s else None
    return tail_mean(rec, measure)
