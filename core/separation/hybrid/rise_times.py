"""Glitch rise times: a tilt spread evenly over τ seconds, chosen per glitch (one for all components) by coordinate
descent on the whitened χ² of its cluster of overlapping glitches."""

from __future__ import annotations

import numpy as np
import torch

from unmix.separation.hybrid.templates import Whitened, design, overlapping, window


def rise_times(W: Whitened, positions: np.ndarray, masks: np.ndarray, taus: tuple[float, ...], threshold: float,
               search: float) -> np.ndarray:
    """Per glitch, the rise time that best explains the whitened data jointly with its neighbours; kept only when
    it lowers χ² by at least ``threshold`` against an instant step."""
    rises = np.zeros(len(positions))
    if len(taus) < 2:
        return rises
    for grp in overlapping(positions, W.length):
        chi2 = _cluster_chi2(W, positions, masks, grp, taus, search)
        for k in grp:  # one pass of coordinate descent, neighbours at their current choice
            best_tau, best = 0.0, None
            base = None
            for tau in taus:
                trial = rises.copy()
                trial[k] = tau
                v = chi2(trial)
                if tau == 0.0:
                    base = v
                if best is None or v < best:
                    best_tau, best = tau, v
            if base is not None and base - best >= threshold:
                rises[k] = best_tau
    return rises


def _cluster_chi2(W: Whitened, positions: np.ndarray, masks: np.ndarray, grp: list[int], taus: tuple[float, ...],
                  search: float):
    """χ²(rise times) of the whitened least-squares fit of the glitches ``grp`` (masked per component)."""
    C = W.XW.shape[0]
    a, b = window(positions[grp], W.pre, W.length, W.n, W.fs, search)
    w = [1.0 / W.SIG[c, a:b] for c in range(C)]
    d = [W.XW[c, a:b] * w[c] for c in range(C)]
    pos = torch.as_tensor(positions[grp])
    cols = {(c, tau): design(W.tpls[c], "glitch", pos, a, b, np.full(len(grp), tau)).numpy() * w[c]
            for c in range(C) for tau in taus}
    row = {k: i for i, k in enumerate(grp)}

    def chi2(trial: np.ndarray) -> float:
        total = 0.0
        for c in range(C):
            keep = [k for k in grp if masks[k, c] > 0]
            if not keep:
                total += float(d[c] @ d[c])
                continue
            A = np.stack([cols[c, float(trial[k])][row[k]] for k in keep], 1)
            coef, *_ = np.linalg.lstsq(A, d[c], rcond=None)
            r = d[c] - A @ coef
            total += float(r @ r)
        return total

    return chi2
