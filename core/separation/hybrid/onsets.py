"""Continuous onsets: L-BFGS on the whitened least squares, templates shifted by any real delay in the Fourier
domain, amplitudes solved exactly at every step (variable projection)."""

from __future__ import annotations

import numpy as np
import torch

from unmix.separation.hybrid.templates import Templates, Whitened, design, overlapping, window


def refine(W: Whitened, positions: np.ndarray, masks: np.ndarray, refine_iter: int, subsample: int, search: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Onsets sorted and refined cluster by cluster (bounded to half a search step), and their masks as floats."""
    order = np.argsort(positions)
    positions, masks = positions[order], masks[order]
    if refine_iter == 0:
        return positions, masks.astype(float)
    fs, n = W.fs, W.n
    out = positions.copy()
    limit = max(1.0, 0.5 * search * fs / subsample)
    for grp in overlapping(positions, W.length):  # independent clusters of overlapping templates
        p0 = torch.as_tensor(positions[grp], dtype=torch.float64)
        a, b = window(positions[grp], W.pre, W.length, n, fs, search)
        dd = [torch.as_tensor(W.XW[c, a:b] / W.SIG[c, a:b]) for c in range(W.XW.shape[0])]
        ww = [torch.as_tensor(1.0 / W.SIG[c, a:b]) for c in range(W.XW.shape[0])]
        out[grp] = refine_group(W.tpls, p0, torch.as_tensor(masks[grp], dtype=torch.float64), a, b, dd, ww, limit,
                                refine_iter)
    return out, masks.astype(float)


def refine_group(tpls: list[Templates], p0: torch.Tensor, mk: torch.Tensor, a: int, b: int, dd: list[torch.Tensor],
                 ww: list[torch.Tensor], limit: float, refine_iter: int) -> np.ndarray:
    """L-BFGS on the onsets of one cluster (bounded to ±limit samples by a tanh map); amplitudes are the exact
    least-squares solution at every evaluation (variable projection)."""
    delta = torch.zeros(len(p0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=refine_iter, line_search_fn="strong_wolfe")
    eye = 1e-9 * torch.eye(len(p0), dtype=torch.float64)

    def closure():
        opt.zero_grad()
        pos = p0 + limit * torch.tanh(delta / limit)
        loss = torch.zeros((), dtype=torch.float64)
        for c in range(len(dd)):
            A = (design(tpls[c], "glitch", pos, a, b) * ww[c]).T * mk[:, c]
            coef = torch.linalg.solve(A.T @ A + eye, A.T @ dd[c])
            loss = loss + ((dd[c] - A @ coef) ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return (p0 + limit * torch.tanh(delta.detach() / limit)).numpy()
