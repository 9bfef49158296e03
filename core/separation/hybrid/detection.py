"""Three-component detection and model selection: the generalised-likelihood statistic of a shared onset,
candidates (its peaks plus given windows), an onset grid search per candidate group and backward elimination of the
candidates that are not significant."""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from unmix.jobs import CancelToken
from unmix.separation.hybrid.config import PRE, DetectionConfig
from unmix.separation.hybrid.templates import Whitened, columns, window

#: a candidate window: (first sample, last sample, threshold)
Window = tuple[float, float, float]


def statistic(W: Whitened) -> np.ndarray:
    """Per sample, ``Σ_c gain_c / σ_c²`` of a glitch with its onset there (free amplitudes, local noise units)."""
    n = W.n
    L, off = W.length, W.pre
    w0 = [t.waves("glitch", [0.0], True)[0].numpy() for t in W.tpls]
    stat = np.zeros(n)
    norms = [float(w @ w) for w in w0]
    for c in range(W.XW.shape[0]):
        corr = np.correlate(np.concatenate([np.zeros(off), W.XW[c], np.zeros(L)]), w0[c], mode="valid")[:n]
        stat += corr**2 / (norms[c] * W.SIG[c] ** 2)
    return stat


def candidates(stat: np.ndarray, fs: float, dc: DetectionConfig, extra: list[Window]) -> list[tuple[float, float]]:
    """(onset sample, threshold) of the statistic's peaks and of the strongest onset inside each ``extra``
    window, merged when closer than ``min_separation``."""
    n = stat.size
    dist = max(1, int(dc.min_separation * fs))
    peaks, _ = find_peaks(stat, height=dc.threshold, distance=dist)
    cands = [(float(p), dc.threshold) for p in peaks]
    for lo, hi, thr in extra:  # (first sample, last sample, threshold): the strongest onset inside
        lo, hi = max(0, int(np.floor(lo))), min(n, int(np.ceil(hi)) + 1)
        if hi > lo:
            cands.append((float(lo + int(np.argmax(stat[lo:hi]))), float(thr)))
    cands.sort()
    merged: list[tuple[float, float]] = []
    for p, thr in cands:
        if merged and p - merged[-1][0] < dist:
            if stat[int(p)] > stat[int(merged[-1][0])]:
                merged[-1] = (p, min(thr, merged[-1][1]))
            else:
                merged[-1] = (merged[-1][0], min(thr, merged[-1][1]))
        else:
            merged.append((p, thr))
    return merged


def candidate_groups(merged: list[tuple[float, float]], length: int, max_group: int
                     ) -> list[list[tuple[float, float]]]:
    """Consecutive candidates whose whitened supports overlap (at most ``max_group``): fitted jointly."""
    groups: list[list[tuple[float, float]]] = []
    for p, thr in merged:
        if groups and p - groups[-1][-1][0] < length and len(groups[-1]) < max_group:
            groups[-1].append((p, thr))
        else:
            groups.append([(p, thr)])
    return groups


def detect(W: Whitened, dc: DetectionConfig, subsample: int, extra: list[Window], token: CancelToken
           ) -> list[tuple[float, np.ndarray]]:
    """Accepted glitches: (grid onset sample, per-component mask of significant amplitudes)."""
    merged = candidates(statistic(W), W.fs, dc, extra)
    if not merged:
        return []
    banks = W.bank("glitch", subsample)
    accepted: list[tuple[float, np.ndarray]] = []
    for grp in candidate_groups(merged, W.length, dc.max_group):
        token.check()
        accepted += select(W, banks, grp, dc, subsample)
    return accepted


def select(W: Whitened, banks: list[np.ndarray], grp: list[tuple[float, float]], dc: DetectionConfig, m: int
           ) -> list[tuple[float, np.ndarray]]:
    """Onset grid search (shared over components) and backward elimination of one candidate group."""
    fs, n, pre = W.fs, W.n, W.pre
    length = banks[0].shape[1]
    positions = [p for p, _ in grp]
    thresholds = [t for _, t in grp]
    half = dc.search * fs
    for sweep in range(2 if len(positions) > 1 else 1):
        for i in range(len(positions)):
            width = half if sweep == 0 else min(half, 2.0)
            coarse = np.arange(np.floor(positions[i] - width), np.ceil(positions[i] + width) + 1)
            best = best_onset(W, banks, positions, i, coarse, length, dc.search)
            positions[i] = best_onset(W, banks, positions, i, best + np.arange(-m + 1, m) / m, length, dc.search)
    while positions:
        a, b = window(positions, pre, length, n, fs, dc.search)
        core = (int(min(positions)) - int(PRE * fs), int(max(positions)) + int(dc.vr_window * fs))
        gains, vr = _gains(W, banks, np.array(positions), a, b, dc.vr_excess, core)
        total = gains.sum(1)
        weakest = int(np.argmin(total / np.array(thresholds)))
        if total[weakest] < thresholds[weakest] or vr < dc.min_variance_reduction:
            positions.pop(weakest)
            thresholds.pop(weakest)
            continue
        masks = gains >= dc.component_threshold
        return [(p, mk) for p, mk in zip(positions, masks, strict=True)]
    return []


def _drop_gains(A: np.ndarray, d: np.ndarray, full: float) -> np.ndarray:
    """χ² increase when each column of ``A`` is dropped from the least-squares fit of ``d`` (residual ``full``)."""
    K = A.shape[1]
    if K == 1:
        return np.array([float(d @ d) - full])
    out = np.zeros(K)
    for k in range(K):
        Ak = np.delete(A, k, axis=1)
        ck, *_ = np.linalg.lstsq(Ak, d, rcond=None)
        out[k] = float(np.sum((d - Ak @ ck) ** 2)) - full
    return out


def _gains(W: Whitened, banks: list[np.ndarray], positions: np.ndarray, a: int, b: int, vr_excess: bool,
           core: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Per member and component: χ² increase when that member is dropped from the joint fit ``(K, C)``; and the
    fraction of the whitened energy on the ``core`` samples ``[c0, c1)`` that the joint fit explains."""
    C = W.XW.shape[0]
    out = np.zeros((len(positions), C))
    c0, c1 = max(core[0], a), min(core[1], b)
    num = den = 0.0
    for c in range(C):
        w = 1.0 / W.SIG[c, a:b]
        A = (columns(banks[c], positions, a, b - a, W.pre) * w).T
        d = W.XW[c, a:b] * w
        coef, *_ = np.linalg.lstsq(A, d, rcond=None)
        res = d - A @ coef
        full = float(np.sum(res**2))
        num += float(np.sum(res[c0 - a : c1 - a] ** 2))
        den += float(np.sum(d[c0 - a : c1 - a] ** 2))
        out[:, c] = _drop_gains(A, d, full)
    if den <= 0:
        return out, 0.0
    if not vr_excess:
        return out, 1.0 - num / den
    # share of the energy *above the local noise level* that the fit explains: a small glitch in noise explains
    # all of it, a quake onset or coda only part (the data are in local-noise units: noise energy = samples)
    noise = float(C * (c1 - c0))
    return out, (den - num) / max(den - noise, den - num, 1e-300)


def projected_scores(d: np.ndarray, cols: np.ndarray, B: np.ndarray | None) -> np.ndarray:
    """Per row of ``cols``, the χ² decrease of fitting it to ``d`` once the columns of ``B`` are projected out."""
    if B is not None:
        Q, _ = np.linalg.qr(B)
        d = d - Q @ (Q.T @ d)
        cols = cols - (cols @ Q) @ Q.T
    norm = np.einsum("ij,ij->i", cols, cols)
    return np.where(norm > 1e-12, (cols @ d) ** 2 / np.maximum(norm, 1e-300), 0.0)


def best_onset(W: Whitened, banks: list[np.ndarray], positions: list[float], i: int, trials: np.ndarray,
               length: int, search: float) -> float:
    """The trial onset of member ``i`` that maximises the summed whitened LS fit given the other members."""
    fs, pre = W.fs, W.pre
    near = length + 2 * search * fs
    others = [p for k, p in enumerate(positions) if k != i and abs(p - positions[i]) < near]
    a, b = window([*others, float(trials.min()), float(trials.max())], pre, length, W.n, fs, search)
    score = np.zeros(len(trials))
    for c in range(W.XW.shape[0]):
        w = 1.0 / W.SIG[c, a:b]
        d = W.XW[c, a:b] * w
        cols = columns(banks[c], trials, a, b - a, pre) * w
        B = (columns(banks[c], np.array(others), a, b - a, pre) * w).T if others else None
        score += projected_scores(d, cols, B)
    return float(trials[int(np.argmax(score))])
