"""Diagnostics logged while training (SPEC §2), through the method interface only.

``LiveDiagnostics(method, every_steps)`` is called by the engine with a step's ``Forward`` record
every ``every_steps`` steps. It computes everything as tensors on the training device and
synchronizes with the host once (one ``.tolist()``); on other steps nothing is computed. Keys:

representation of view 0 (ZHANG §3.1, A.6; Wang & Isola)   std, std_scaled, m_o, m_r, cov_term, align, uniform
predictor outputs P of view 0                               p_std_scaled, p_m_o, p_m_r, loss_on_p (1 when
                                                            the gradient frame's anchor is P)
projector's final BN (CENTER Fig. 5)                        center_pre_bn, center_post_bn
predictor (ZHANG Table 6; BRIDGE Thm 3.1, Figs. 3–4)        bias_center_cos, wp_symmetry, wp_diag_share,
                                                            wp_fft_rel, wp_fft_rel_fit
InfoNCE weights (ZHANG Fig. 7a)                             lambda_entropy
gradient decomposition (ZHANG §3–4)                         see :func:`siamlab.analysis.gradients.summarize`

m_o is also CENTER's ‖s‖. ``lambda_entropy`` is logged for InfoNCE-type methods, i.e. those with a
``params.tau`` / ``params.temperature`` and a basic part Z_b in their gradient frame; λ runs over the
in-batch NT-Xent candidates (MoCo's queue is not included). The final-BN centers are not recorded
inside a ``torch.compile``-d forward. Under torchrun every tensor is gathered over ranks first (gather_nograd),
so all ranks must call the diagnostics at the same steps (``should_log`` depends on the step only).
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..collectives import gather_nograd
from . import labelfree as LF
from . import metrics as M
from .gradients import GradientParts, gradient_parts, lambda_entropy, summarize, unwrap
from .predictor import bias_center_cosine, diagonal_dominance, eigenvalues, predictor_matrices, symmetry_gap, wtw_fft_gap


class _BNTap:
    """Forward hook keeping references to the last few (input, output) pairs of the final BN in training mode."""

    def __init__(self):
        self.records = collections.deque(maxlen=4)

    def __call__(self, module, inputs, output):
        if module.training and not torch.compiler.is_compiling():
            self.records.append((inputs[0].detach(), output.detach()))

    def __deepcopy__(self, memo):  # a deep-copied model (EMA teacher, random-init copy) gets an empty tap
        return _BNTap()


def final_bn(method) -> Optional[nn.Module]:
    """The projector's final BN: ``projector.final_bn`` or a trailing BatchNorm of a Sequential; else None."""
    proj = getattr(getattr(unwrap(method), "encoder", None), "projector", None)
    bn = getattr(proj, "final_bn", None)
    if bn is None and isinstance(proj, nn.Sequential) and len(proj) and isinstance(proj[-1], nn.modules.batchnorm._BatchNorm):
        bn = proj[-1]
    return bn


def _temperature(method) -> Optional[float]:
    params = getattr(method, "params", None)
    for name in ("tau", "temperature"):
        v = getattr(params, name, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def _hi(t: torch.Tensor) -> torch.Tensor:
    return gather_nograd(t.detach().float() if t.dtype in (torch.float16, torch.bfloat16) else t.detach())


class LiveDiagnostics:
    """Live diagnostics of one method (see the module docstring for the keys); ``close()`` removes the BN hook."""

    def __init__(self, method, every_steps: int, gradients: bool = True):
        self.method = method
        self.every_steps = int(every_steps)
        self.gradients = bool(gradients)
        self._tap = _BNTap()
        self._bn = None
        self._handle = None
        self._last_pred_input: Optional[torch.Tensor] = None
        self._last_center: Optional[torch.Tensor] = None
        self._spectra: dict = {}
        self._ensure_hook()

    # --- hooks ---------------------------------------------------------------------------------
    def _ensure_hook(self) -> None:
        """(Re-)attach the tap to the current final BN (SyncBatchNorm conversion replaces the module)."""
        bn = final_bn(self.method) if self.every_steps > 0 else None
        if bn is self._bn:
            return
        self.close()
        self._bn = bn
        if bn is not None:
            self._handle = bn.register_forward_hook(self._tap)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle, self._bn = None, None
        self._tap.records.clear()

    def should_log(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    # --- one logged step -----------------------------------------------------------------------
    def __call__(self, out, step: int) -> dict:
        """All live metrics of this step's ``Forward`` record as ``{name: float}`` (one host sync)."""
        self._ensure_hook()
        method = unwrap(self.method)
        with torch.no_grad():
            zs = [_hi(z) for z in out.z]
            self._last_center = M.center(zs[0])
            vals = self._representation(zs)
            if out.p is not None:
                p0 = _hi(out.p[0])
                vals.update(p_std_scaled=M.std_scaled(p0), p_m_o=M.m_o(p0), p_m_r=M.m_r(p0))
                on_p = method.gradient_frame(out).anchor[0] == "p"  # the loss acts on P (verdict rule 2)
                vals["loss_on_p"] = p0.new_tensor(float(on_p))
            vals.update(self._bn_centers(out))
            vals.update(self._predictor(method, zs[0]))
            tau = _temperature(method)
            if tau is not None and len(zs) >= 2 and method.gradient_frame(out).basic is not None:
                vals["lambda_entropy"] = lambda_entropy(zs[0], zs[1], tau)
        if self.gradients:
            parts = gradient_parts(method, out)
            with torch.no_grad():
                vals.update(summarize(_gathered(parts)))
        self._tap.records.clear()
        names = list(vals)
        numbers = torch.stack([v.detach().to(torch.float64).reshape(()) for v in vals.values()]).tolist()
        return dict(zip(names, numbers))

    @staticmethod
    def _representation(zs: list) -> dict:
        z = zs[0]
        vals = {"std": M.std_of_normalized(z), "std_scaled": M.std_scaled(z), "m_o": M.m_o(z), "m_r": M.m_r(z),
                "cov_term": M.covariance_term(z)}
        if len(zs) >= 2:
            vals.update(align=M.alignment(z, zs[1]), uniform=M.uniformity(z))
        return vals

    def _bn_centers(self, out) -> dict:
        """Center norm of the final BN's input and output (CENTER Fig. 5) for view 0 when it can be matched."""
        if not self._tap.records:
            return {}
        z0 = out.z[0]
        match = [r for r in self._tap.records if r[1].data_ptr() == z0.data_ptr() and r[1].shape == z0.shape]
        pre, post = (match or list(self._tap.records))[-1]
        return {"center_pre_bn": M.center_norm(_hi(pre)), "center_post_bn": M.center_norm(_hi(post))}

    def _predictor(self, method, z: torch.Tensor) -> dict:
        pred = getattr(method, "predictor", None)
        if pred is None:
            return {}
        d = z.shape[1]
        x = M.unit(z).to(z.dtype) if getattr(pred, "normalize_input", False) else z
        self._last_pred_input = x
        vals = {}
        bias = getattr(pred, "last_bias", None)
        if bias is not None and bias.shape == (d,):
            vals["bias_center_cos"] = bias_center_cosine(bias.detach(), z)
        w = getattr(pred, "linear_weight", None)
        if w is not None and w.shape == (d, d):
            w = w.detach()
            rel, fit = wtw_fft_gap(w, x.to(w.dtype))
            vals.update(wp_symmetry=symmetry_gap(w), wp_diag_share=diagonal_dominance(w), wp_fft_rel=rel, wp_fft_rel_fit=fit)
        return vals

    # --- evaluation features -------------------------------------------------------------------
    def representation_metrics(self, features: dict, labels: Optional[torch.Tensor] = None,
                               num_classes: Optional[int] = None, gather: bool = False) -> dict:
        """Metrics of clean (un-augmented) features, e.g. ``{"backbone": h, "projector": z}``, as
        ``{f"{metric}_{name}": float}``: std_scaled, m_o, m_r, cov_term, sigma_i (‖Σ−I‖²/d, BRIDGE Fig. 1),
        l_cor, l_bound (GEN eq. 8, 11; with ``num_classes``), erank (effective rank), dim (the feature
        dimension d), the label-free rankme and alpha_req (:mod:`siamlab.analysis.labelfree`; left out
        where undefined) and, with labels, interclass_cos2 (GEN Thm 2); plus ``num_classes`` when given (the
        dimensional-collapse rule of :mod:`siamlab.analysis.verdict` reads erank, dim and num_classes). ``gather=True`` when each rank holds a shard of the features."""
        vals, free = {}, {}
        for name, f in features.items():
            f = gather_nograd(f.detach()) if gather else f.detach()
            if not bool(torch.isfinite(f).all()):  # a diverged network: report it, do not crash on it
                vals[f"nonfinite_{name}"] = torch.tensor(1.0)
                continue
            with torch.no_grad():
                spectrum = M.covariance_spectrum(f)
                self._spectra[name] = spectrum.cpu().numpy()
                lcor = M.l_cor(f)
                vals.update({
                    f"std_scaled_{name}": M.std_scaled(f), f"m_o_{name}": M.m_o(f), f"m_r_{name}": M.m_r(f),
                    f"cov_term_{name}": M.covariance_term(f), f"sigma_i_{name}": M.sigma_minus_identity(f),
                    f"l_cor_{name}": lcor, f"erank_{name}": M.effective_rank_of_spectrum(spectrum),
                    f"dim_{name}": torch.tensor(float(f.shape[1])),
                })
                free[f"rankme_{name}"] = LF.rankme(f)
                free[f"alpha_req_{name}"] = LF.alpha_of_spectrum(spectrum, f.shape[0])
                if num_classes:
                    vals[f"l_bound_{name}"] = M.l_bound(lcor, f.shape[1], int(num_classes))
                if labels is not None and num_classes:
                    y = gather_nograd(labels) if gather else labels
                    vals[f"interclass_cos2_{name}"] = M.interclass_cos2(f, y, int(num_classes))
        if not vals:
            return {}
        if num_classes:
            vals["num_classes"] = torch.tensor(float(num_classes))
        names = list(vals)
        numbers = torch.stack([v.to(torch.float64).reshape(()).cpu() for v in vals.values()]).tolist()
        return {**dict(zip(names, numbers)), **{k: v for k, v in free.items() if v is not None}}

    # --- snapshot for plots --------------------------------------------------------------------
    def snapshot(self, path):
        """Write an ``.npz`` with the matrices and spectra the report plots: ``W_p``, ``WtW``, ``FFt``,
        ``eig_real``/``eig_imag`` (of W_p), ``bias``, ``center`` and ``spectrum_<feature>`` (from the
        last :meth:`representation_metrics`) to ``path`` (a file path, or a binary file object, e.g. the
        engine's atomic writer); returns ``path``. Call it on the main rank only."""
        method = unwrap(self.method)
        pred = getattr(method, "predictor", None)
        arrays = {f"spectrum_{k}": v for k, v in self._spectra.items()}
        with torch.no_grad():
            w = getattr(pred, "linear_weight", None) if pred is not None else None
            z = self._last_pred_input
            mats = predictor_matrices(w, z if w is not None else None)
            arrays.update({k: v.numpy() for k, v in mats.items()})
            if w is not None:
                ev = eigenvalues(w.detach())
                arrays.update(eig_real=ev.real.cpu().numpy(), eig_imag=ev.imag.cpu().numpy())
            bias = getattr(pred, "last_bias", None) if pred is not None else None
            if bias is not None:
                arrays["bias"] = bias.detach().float().cpu().numpy()
            if self._last_center is not None:
                arrays["center"] = self._last_center.float().cpu().numpy()
        if isinstance(path, (str, Path)):
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path


def _gathered(parts: GradientParts) -> GradientParts:
    return GradientParts(
        g=gather_nograd(parts.g),
        anchor=gather_nograd(parts.anchor),
        basic=None if parts.basic is None else gather_nograd(parts.basic),
        decor=gather_nograd(parts.decor),
    )
