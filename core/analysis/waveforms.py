"""Aligned waveforms of a cluster and their centroid: what a typical member looks like, and its spectrum.

Snippets are demeaned and scaled to unit std per component, aligned on the most confident one by the lag that
maximises their cross-correlation summed over the components, weighted by their mean Pearson correlation with it
(negative correlations weigh 0, unlike the published code), and averaged sample by sample where they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from obspy import UTCDateTime
from scipy.signal import correlate, welch

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.snippets import read_snippets, select_windows


def standardize(x: np.ndarray) -> np.ndarray:
    """Demean and scale every trace (last axis) to unit std; flat traces become zeros."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """``out[t] = x[t - lag]`` with NaN where that falls outside ``x`` (last axis)."""
    out = np.full(x.shape, np.nan)
    T = x.shape[-1]
    if lag >= 0:
        out[..., lag:] = x[..., : T - lag]
    else:
        out[..., :lag] = x[..., -lag:]
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return 0.0
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def align_waveforms(data: np.ndarray, reference: int = 0, max_lag: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align standardised snippets ``data`` (n, C, T) on ``data[reference]``.

    Returns ``aligned`` (n, C, T; NaN where a shifted snippet has no samples), ``lags`` (n,) in samples (positive:
    the snippet was delayed to match) and ``weights`` (n,): mean Pearson correlation over components after
    alignment, clipped at 0.
    """
    x = standardize(data)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ConfigError(f"waveforms to align must be a non-empty (n, components, samples) array, got {x.shape}")
    n, C, T = x.shape
    max_lag = T // 2 if max_lag is None else int(min(max(max_lag, 0), T - 1))
    ref = x[reference]
    lags = np.zeros(n, dtype=np.int64)
    aligned = np.empty_like(x)
    weights = np.zeros(n)
    centre = T - 1  # index of zero lag in a 'full' correlation
    for i in range(n):
        cc = sum(correlate(ref[c], x[i, c], mode="full", method="fft") for c in range(C))
        window = cc[centre - max_lag: centre + max_lag + 1]
        lag = int(np.argmax(window)) - max_lag
        lags[i] = lag
        aligned[i] = _shift(x[i], lag)
        weights[i] = max(np.mean([_pearson(aligned[i, c], ref[c]) for c in range(C)]), 0.0)
    return aligned, lags, weights


def weighted_centroid(aligned: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean (C, T) of aligned snippets, ignoring NaN samples; NaN where no weight covers a sample."""
    w = np.asarray(weights, dtype=float)[:, None, None] * np.isfinite(aligned)
    total = w.sum(axis=0)
    num = np.nansum(np.nan_to_num(aligned) * w, axis=0)
    return np.divide(num, total, out=np.full(total.shape, np.nan), where=total > 0)


def amplitude_spectrum(x: np.ndarray, sampling_rate: float, nperseg: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Welch amplitude spectrum (square root of the PSD) of each row of ``x`` (NaN samples dropped at the ends)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    ok = np.all(np.isfinite(x), axis=0)
    if not ok.any():
        raise ConfigError("no finite samples to take a spectrum of")
    first, last = np.flatnonzero(ok)[[0, -1]]
    seg = np.nan_to_num(x[:, first:last + 1])
    freqs, psd = welch(seg, fs=sampling_rate, nperseg=min(nperseg, seg.shape[-1]), axis=-1)
    return freqs, np.sqrt(psd)


@dataclass
class ClusterWaveforms:
    """A cluster's aligned snippets at one scale, ordered by confidence (``indices[0]`` is the reference)."""

    cluster: int
    scale: int
    indices: np.ndarray
    starts: list[UTCDateTime]
    aligned: np.ndarray  # (n, C, T), standardised, NaN padded
    lags: np.ndarray  # (n,) samples
    weights: np.ndarray  # (n,)
    centroid: np.ndarray  # (C, T)
    freqs: np.ndarray
    spectrum: np.ndarray  # (C, F) amplitude spectrum of the centroid
    ids: list[str]
    sampling_rate: float
    components: str = "UVW"
    notes: list[str] = field(default_factory=list)

    def best_correlated(self, n: int = 10) -> np.ndarray:
        """Positions (into ``aligned``) of the ``n`` snippets most correlated with the reference."""
        return np.argsort(-self.weights, kind="stable")[:n]


def cluster_waveforms(
    table: ClusterTable,
    scale: int,
    clusters: list[int] | None = None,
    n: int = 50,
    components: str | None = None,
    max_lag: int | None = None,
    nperseg: int = 1024,
    min_confidence: float = 0.0,
    feature_config=None,
    cache: dict | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> dict[int, ClusterWaveforms]:
    """Aligned snippets, weighted centroid and its spectrum for every non-empty cluster at ``scale``.

    Up to ``n`` most confident, mutually non-overlapping sub-windows per cluster are read from the input files
    (:func:`unmix.snippets.read_snippets`; ``cache`` shares file reads between calls). ``components`` defaults to
    those of the store's features.
    """
    if components is None:  # the components the features were made of (e.g. 'V' for a BHV-only record)
        cfg = feature_config if feature_config is not None else table.meta.get("feature_config") or {}
        components = str((cfg if isinstance(cfg, dict) else cfg.to_dict()).get("components") or "UVW")
    ks = list(range(table.n_clusters)) if clusters is None else [int(k) for k in clusters]
    cache = {} if cache is None else cache
    out: dict[int, ClusterWaveforms] = {}
    for j, k in enumerate(ks):
        token.check()
        idx = select_windows(table, [k], scale, n, min_confidence=min_confidence)
        if idx.size == 0:
            continue
        part = sub_progress(progress, j / len(ks), (j + 1) / len(ks))
        snip = read_snippets(table, idx, scale, components, part, token, feature_config=feature_config, cache=cache)
        aligned, lags, weights = align_waveforms(snip.data, 0, max_lag)
        centroid = weighted_centroid(aligned, weights)
        freqs, spec = amplitude_spectrum(centroid, snip.sampling_rate, nperseg)
        out[k] = ClusterWaveforms(k, int(scale), idx, snip.starts, aligned, lags, weights, centroid, freqs, spec,
                                  snip.ids, snip.sampling_rate, components)
    progress(1.0, "aligned waveforms")
    return out
