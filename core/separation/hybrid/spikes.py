"""Spikes (steps in displacement, a few samples long): a spike onset near each glitch onset where it is significant
over the components, on the full-band whitened record with the glitches removed."""

from __future__ import annotations

import numpy as np

from unmix.separation.hybrid.config import SpikeConfig
from unmix.separation.hybrid.detection import projected_scores
from unmix.separation.hybrid.templates import Whitened, columns


def spike_onsets(W: Whitened, positions: np.ndarray, sc: SpikeConfig, m: int) -> np.ndarray:
    """Per glitch onset, the spike onset (sub-sample grid of ``m`` steps) within ``spike_search`` s whose χ² over
    the components reaches ``spike_threshold`` (the glitches' columns projected out), else NaN."""
    fs, n, pre = W.fs, W.n, W.pre
    sbank = W.bank("spike", m)
    slen = W.tpls[0].length["spike"]
    glen = W.length
    gbank = W.bank("glitch", m)
    out = np.full(len(positions), np.nan)
    for k, p in enumerate(positions):
        a, b = max(int(p) - pre - 2, 0), min(int(p) - pre + slen + 2, n)
        if b - a < 8:
            continue
        trials = p + np.arange(-sc.spike_search * fs * m, sc.spike_search * fs * m + 1) / m
        score = np.zeros(len(trials))
        for c in range(W.XW.shape[0]):
            w = 1.0 / W.SIG[c, a:b]
            near = [q for q in positions if abs(q - p) < glen]
            B = (columns(gbank[c], np.array(near), a, b - a, pre) * w).T
            d = W.XW[c, a:b] * w
            cols = columns(sbank[c], trials, a, b - a, pre) * w
            score += projected_scores(d, cols, B)
        j = int(np.argmax(score))
        if score[j] >= sc.spike_threshold:
            out[k] = trials[j]
    return out
