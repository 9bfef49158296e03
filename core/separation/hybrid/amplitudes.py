"""Amplitudes: joint whitened least squares of all kept glitches and spikes, per component, cluster by cluster of
overlapping templates."""

from __future__ import annotations

import numpy as np
import torch

from unmix.separation.hybrid.templates import Whitened, design, overlapping, window


def amplitudes(W: Whitened, positions: np.ndarray, masks: np.ndarray, spike_pos: np.ndarray, search: float,
               rises: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Glitch and spike amplitudes ``(K, C)`` (0 where masked out or no spike: ``spike_pos`` NaN)."""
    C = W.XW.shape[0]
    K = len(positions)
    amps, samps = np.zeros((K, C)), np.zeros((K, C))
    rises = np.zeros(K) if rises is None else rises
    for grp in overlapping(positions, W.length):
        a, b = window(positions[grp], W.pre, W.length, W.n, W.fs, search)
        for c in range(C):
            keep = [k for k in grp if masks[k, c] > 0]
            sp = [k for k in grp if np.isfinite(spike_pos[k])]
            if not keep and not sp:
                continue
            w = 1.0 / W.SIG[c, a:b]
            cols = []
            if keep:
                cols.append(design(W.tpls[c], "glitch", torch.as_tensor(positions[keep]), a, b, rises[keep]).numpy())
            if sp:
                cols.append(design(W.tpls[c], "spike", torch.as_tensor(spike_pos[sp]), a, b).numpy())
            A = (np.concatenate(cols) * w).T
            coef, *_ = np.linalg.lstsq(A, W.XW[c, a:b] * w, rcond=None)
            amps[keep, c] = coef[: len(keep)]
            samps[sp, c] = coef[len(keep) :]
    return amps, samps
