"""Windowed multi-scale scattering-covariance features of a record (the published "pyramid").

Every statistic is a time average of pointwise products, and the published ``each_ps`` normalisation divides each
first-layer channel by its RMS over the window, which only rescales coefficients (spars/scat by σ_j, ps/phaseenv/
envelope by σ_j σ_j'). So features are assembled from block statistics (blocks of the smallest scale): block averages
give every scale, and the window's σ_j² is the mean of its ``ps`` blocks. With ``edge='record'`` the block statistics
are computed once for the whole record, in overlapping chunks whose margins absorb the reflection padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unmix.errors import DataError
from unmix.features.config import FeatureConfig
from unmix.io.record import Record
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

CHUNK_BLOCKS = 128
MARGIN_BLOCKS = 8


def make_engine(config: FeatureConfig, device: str | torch.device = "auto", memory_budget: int | None = None):
    from unmix.scattering import ScatteringCovariance, resolve_device

    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    return ScatteringCovariance(J=config.J, Q=config.Q, wavelet=config.wavelet, high_freq=config.high_freq,
                                model=config.model, normalize=None, pooling=config.block, dtype=torch.float32,
                                device=resolve_device(device), **kw)


@dataclass
class WindowFeatures:
    """Features of one record: per scale (n_windows, C, K) complex64, and per-scale UTC intervals (POSIX s)."""

    features: dict[int, np.ndarray]
    intervals: dict[int, np.ndarray]
    window_starts: np.ndarray
    channels: list[str]

    @property
    def n_windows(self) -> int:
        return len(self.window_starts)


def _normaliser(description: np.ndarray, sigma2: np.ndarray, JQ: int) -> np.ndarray:
    """Divisors σ_jl1·σ_jr1 (σ_jl1 alone for one-sided families) broadcast to (..., K)."""
    sigma = np.sqrt(np.maximum(sigma2, np.finfo(np.float64).tiny))
    left = sigma[..., description["jl1"]]
    right_idx = description["jr1"]
    right = np.where(right_idx >= 0, sigma[..., np.clip(right_idx, 0, JQ)], 1.0)
    return left * right


def _ps_index(description: np.ndarray, JQ: int) -> np.ndarray:
    ps = np.flatnonzero(description["c_type"] == "ps")
    order = np.argsort(description["jl1"][ps])
    idx = ps[order]
    if len(idx) != JQ + 1:
        raise RuntimeError("description lacks the ps family needed for normalisation")
    return idx


def assemble(blocks: np.ndarray, starts: np.ndarray, config: FeatureConfig, description: np.ndarray
             ) -> dict[int, np.ndarray]:
    """Window features from block statistics ``blocks`` (C, K, n_blocks) for windows starting at block ``starts``."""
    b = config.block
    W = config.window // b
    cs = np.concatenate([np.zeros(blocks.shape[:-1] + (1,), complex), np.cumsum(blocks, axis=-1, dtype=complex)],
                        axis=-1)
    JQ = config.J * config.Q
    out = {}
    norm = None
    if config.normalize == "each_ps":
        ps = _ps_index(description, JQ)
        sigma2 = ((cs[:, ps][..., starts + W] - cs[:, ps][..., starts]) / W).real  # (C, JQ+1, n)
        norm = _normaliser(description, np.moveaxis(sigma2, 1, -1), JQ)  # (C, n, K)
        norm = np.moveaxis(norm, 0, 1)  # (n, C, K)
    for s in config.scales:
        S = s // b
        first = starts + (W - S if config.keep == "last" else (W - S) // 2)
        feats = np.moveaxis((cs[..., first + S] - cs[..., first]) / S, -1, 0)  # (n, C, K)
        if norm is not None:
            feats = feats / norm
        out[s] = feats.astype(np.complex64)
    return out


def block_statistics(x: np.ndarray, engine, config: FeatureConfig, token: CancelToken = NO_CANCEL,
                     progress: Progress = no_progress) -> np.ndarray:
    """Block statistics (C, K, n_blocks) of a whole record (C, L), computed chunk by chunk with margins."""
    b = config.block
    nblk = x.shape[-1] // b
    core = CHUNK_BLOCKS
    margin = max(MARGIN_BLOCKS, int(np.ceil(2 ** (config.J + 3) / b)))
    pieces = []
    starts = list(range(0, nblk, core))
    for i, k0 in enumerate(starts):
        token.check()
        k1 = min(k0 + core, nblk)
        a0, a1 = max(k0 - margin, 0), min(k1 + margin, nblk)
        seg = torch.from_numpy(np.ascontiguousarray(x[None, :, a0 * b:a1 * b], dtype=np.float32))
        with torch.no_grad():
            y = engine.transform(seg)[0]  # (C, K, a1 - a0)
        pieces.append(y[..., k0 - a0:k1 - a0].cpu().numpy())
        progress((i + 1) / len(starts), "scattering")
    return np.concatenate(pieces, axis=-1)


def record_features(record: Record, config: FeatureConfig, engine=None, device: str = "auto",
                    token: CancelToken = NO_CANCEL, progress: Progress = no_progress) -> WindowFeatures:
    """Multi-scale features of every window of ``record`` (windows that do not fit are not made)."""
    engine = engine or make_engine(config, device)
    description = engine.description
    x = record.to_array(np.float64)
    fs = record.sampling_rate
    b, W, H = config.block, config.window // config.block, config.hop // config.block
    nblk = x.shape[-1] // b
    n_win = 0 if nblk < W else (nblk - W) // H + 1
    channels = [tr.id for tr in record.stream]
    if n_win == 0:
        return WindowFeatures({s: np.zeros((0, x.shape[0], len(description)), np.complex64) for s in config.scales},
                              {s: np.zeros((0, 2)) for s in config.scales}, np.zeros(0), channels)
    starts = np.arange(n_win) * H
    if config.edge == "record":
        blocks = block_statistics(x[:, : nblk * b], engine, config, token, progress)
        feats = assemble(blocks, starts, config, description)
    else:
        feats = {s: [] for s in config.scales}
        batch = 8
        for i in range(0, n_win, batch):
            token.check()
            idx = starts[i:i + batch]
            seg = np.stack([x[:, k * b:(k + W) * b] for k in idx]).astype(np.float32)
            with torch.no_grad():
                y = engine.transform(torch.from_numpy(seg)).cpu().numpy()  # (n, C, K, W)
            for j in range(len(idx)):
                part = assemble(y[j], np.array([0]), config, description)
                for s in config.scales:
                    feats[s].append(part[s])
            progress(min(i + batch, n_win) / n_win, "scattering")
        feats = {s: np.concatenate(v) for s, v in feats.items()}
    t0 = record.starttime.timestamp
    intervals = {}
    for s in config.scales:
        S = s // b
        first = starts + (W - S if config.keep == "last" else (W - S) // 2)
        intervals[s] = np.column_stack([t0 + first * b / fs, t0 + (first + S) * b / fs])
    if not np.all(np.isfinite(np.concatenate([f.view(np.float32).ravel() for f in feats.values()]))):
        raise DataError(f"{record.key}: non-finite features (flat or empty data?)", record.sources_label)
    return WindowFeatures(feats, intervals, t0 + starts * b / fs, channels)

