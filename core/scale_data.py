"""Large synthetic cluster tables with the structure of a Mars record, for benchmarks and tests at mission scale.

A real table needs weeks of features and a trained model; what the GUI, the analysis and the separation do with a
1,400-sol table depends only on its size and on its time structure. :func:`synthetic_cluster_table` gives the
published window layout (65536-sample windows, hop 1024, 20 sps: ≈1,734 windows per sol) with clusters that
follow the sol like InSight's: quiet evenings and nights, wind rising after sunrise to a windy afternoon that varies
from sol to sol and with the season, and thermal glitches around dawn and dusk seen by the fine scales only.
"""

from __future__ import annotations

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.mars_time import SECONDS_PER_SOL, lmst_to_utc, sol_float

DEFAULT_SCALES = (1024, 4096, 16384, 65536)
SYNTHETIC_KEY = "SY.ELYSE.02.BH"
"""Record key of the windows: the one of ``unmix.synthetic`` records, so that the GUI overlays them on one."""

_CHUNK = 1 << 17  # windows per block of random posteriors and latents (bounds the temporaries)
_EPISODE_S = 1200.0  # the wind changes every ~20 min
_GLITCHES_PER_SOL = 40.0
_GLITCH_PEAKS = ((6.0, 0.75, 0.5), (17.5, 1.0, 0.4))  # (LMST hour, spread h, share); the rest fall at any hour


def synthetic_cluster_table(sols: float, scales: tuple[int, ...] = DEFAULT_SCALES, clusters: int = 16,
                            latent: int | None = 16, seed: int = 0, *, start_sol: int = 200, window: int = 65536,
                            hop: int = 1024, sampling_rate: float = 20.0, progress: Progress = no_progress,
                            token: CancelToken = NO_CANCEL) -> ClusterTable:
    """A :class:`~unmix.clusters.ClusterTable` of ``sols`` sols of contiguous windows from LMST midnight of
    ``start_sol``, as ``unmix cluster`` would write it (valid posteriors whose argmax is the cluster; latents near
    a per-cluster centroid; ``latent=None`` leaves them out). Seeded: the same arguments give the same table.

    Clusters ``0…B-1`` are wind levels (0: quiet evening, 1: pre-dawn night, the highest: windy afternoons);
    the last ``clusters // 4`` are glitch types, at scales up to ~15 min; 2 % of the windows are a random cluster
    with a low confidence.
    """
    scales = tuple(sorted(int(s) for s in scales))
    _check(sols, scales, clusters, latent, window, hop, sampling_rate)
    rng = np.random.default_rng(seed)
    dt = hop / sampling_rate
    n = (int(sols * SECONDS_PER_SOL * sampling_rate) - window) // hop + 1
    if n < 1:
        raise ConfigError(f"{sols:g} sols hold no {window}-sample window at {sampling_rate:g} sps")
    t0 = lmst_to_utc(start_sol).timestamp
    starts = t0 + dt * np.arange(n)
    offsets = np.array([(window - s) / sampling_rate for s in scales])
    intervals = np.empty((n, len(scales), 2))
    intervals[..., 0] = starts[:, None] + offsets
    intervals[..., 1] = starts[:, None] + window / sampling_rate
    lmst = _sol_float(intervals)
    progress(0.1, "time of day")
    token.check()
    n_glitch = clusters // 4
    cluster = _wind_clusters(rng, intervals, lmst, scales, sampling_rate, clusters - n_glitch, t0)
    _add_glitches(rng, cluster, lmst, sols, scales, offsets, t0, dt, sampling_rate, clusters - n_glitch, n_glitch,
                  start_sol)
    flipped = rng.random(cluster.shape) < 0.02
    cluster[flipped] = rng.integers(0, clusters, int(flipped.sum()))
    progress(0.3, "posteriors")
    prob, conf, lat = _posteriors(rng, cluster, flipped, clusters, latent, progress, token)
    rate = float(sampling_rate)
    record = {"key": SYNTHETIC_KEY, "sampling_rate": rate, "start": float(t0),
              "end": float(intervals[-1, :, 1].max())}
    meta = {"sampling_rate": rate, "n_clusters": int(clusters), "model": "", "store": "",
            "feature_config": {"window": window, "hop": hop, "scales": list(scales), "keep": "last",
                               "components": "UVW"},
            "synthetic_scale": {"sols": float(sols), "seed": int(seed), "start_sol": int(start_sol)}}
    progress(1.0, "done")
    return ClusterTable(scales=scales, intervals=intervals, lmst=lmst, cluster=cluster, confidence=conf,
                        probabilities=prob, latent=lat, input_index=np.zeros(n, np.int32),
                        record_index=np.zeros(n, np.int32),
                        inputs=[{"path": "", "sha256": "", "size": 0, "records": [record], "notes": []}], meta=meta)


def _check(sols: float, scales: tuple[int, ...], clusters: int, latent: int | None, window: int, hop: int,
           rate: float) -> None:
    if not (np.isfinite(sols) and sols > 0):
        raise ConfigError(f"sols must be > 0, got {sols}")
    if not scales or scales[0] <= 0 or scales[-1] > window:
        raise ConfigError(f"scales must be positive and at most the window ({window}), got {scales}")
    if not 2 <= clusters <= 32767:
        raise ConfigError(f"clusters must be 2–32767, got {clusters}")
    if latent is not None and latent < 1:
        raise ConfigError(f"latent must be ≥ 1 or None, got {latent}")
    if hop <= 0 or window <= 0 or rate <= 0:
        raise ConfigError("window, hop and sampling rate must be > 0")


def _sol_float(t: np.ndarray) -> np.ndarray:
    """:func:`unmix.mars_time.sol_float` of many times: exact at one time in 4096 and interpolated between (LMST is
    affine in UTC between leap seconds, so the interpolation is exact to float precision)."""
    flat = t.ravel()
    lo, hi = float(flat.min()), float(flat.max())
    grid = np.linspace(lo, hi, max(2, flat.size // 4096 + 2))
    return np.interp(flat, grid, sol_float(grid)).reshape(t.shape)


def _wind_clusters(rng: np.random.Generator, intervals: np.ndarray, lmst: np.ndarray, scales: tuple[int, ...],
                   rate: float, levels: int, t0: float) -> np.ndarray:
    """Cluster of each window and scale from a wind level: a daily profile (quiet night, windy afternoon) scaled by
    each sol's windiness, shifted with the season, plus 20-min gusts averaged over the sub-window."""
    mid_sol = lmst.mean(axis=-1)
    sol = np.floor(mid_sol).astype(np.int64)
    hour = (mid_sol - sol) * 24.0
    first = int(sol.min())
    days = int(sol.max()) - first + 1
    windy = rng.uniform(0.55, 1.05, days)[sol - first]
    shift = (np.sin(2 * np.pi * sol / 668.6) + rng.normal(0.0, 0.3, days)[sol - first])
    level = windy * np.exp(-0.5 * ((hour - 13.0 - shift) / 2.8) ** 2)
    level += np.where(hour < 6.0, 0.12, 0.03)  # the lander cools before dawn: a second night cluster
    mid = intervals.mean(axis=-1) - t0
    gusts = rng.normal(0.0, 0.12, int(mid.max() // _EPISODE_S) + 2)
    spans = np.array([s / rate for s in scales])
    level += gusts[(mid // _EPISODE_S).astype(np.int64)] * (0.3 + level) / np.sqrt(np.maximum(1.0, spans / _EPISODE_S))
    return np.clip(level * levels, 0, levels - 1).astype(np.int16)


def _add_glitches(rng: np.random.Generator, cluster: np.ndarray, lmst: np.ndarray, sols: float,
                  scales: tuple[int, ...], offsets: np.ndarray, t0: float, dt: float, rate: float, first: int,
                  types: int, start_sol: int) -> None:
    """Thermal glitches (most around dawn and dusk) as clusters ``first…first+types-1`` of every window whose
    sub-window holds one, at scales up to ~5 min (and a third of them up to ~15 min)."""
    if types < 1:
        return
    count = int(rng.poisson(_GLITCHES_PER_SOL * sols))
    peak = rng.choice(len(_GLITCH_PEAKS) + 1, count, p=[p for *_, p in _GLITCH_PEAKS]
                      + [1 - sum(p for *_, p in _GLITCH_PEAKS)])
    hours = rng.uniform(0, 24, count)
    for j, (h, spread, _share) in enumerate(_GLITCH_PEAKS):
        hours[peak == j] = rng.normal(h, spread, int((peak == j).sum()))
    when = start_sol + rng.uniform(0, sols, count).astype(np.int64) + np.mod(hours, 24.0) / 24.0
    at = np.interp(when, lmst[:, 0, 0], t0 + dt * np.arange(lmst.shape[0]) + offsets[0])
    kind = first + (peak * types // (len(_GLITCH_PEAKS) + 1) + rng.integers(0, 2, count)) % types
    strong = rng.random(count) < 1 / 3
    n = cluster.shape[0]
    for s, scale in enumerate(scales):
        span = scale / rate
        use = np.ones(count, bool) if span <= 300 else strong if span <= 1000 else np.zeros(count, bool)
        a, k = at[use], kind[use]
        lo = np.clip(np.ceil((a - span - offsets[s] - t0) / dt), 0, n).astype(np.int64)
        hi = np.clip(np.floor((a - offsets[s] - t0) / dt) + 1, 0, n).astype(np.int64)
        reps = np.maximum(hi - lo, 0)
        idx = np.repeat(lo, reps) + np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        cluster[idx, s] = np.repeat(k, reps)


def _posteriors(rng: np.random.Generator, cluster: np.ndarray, flipped: np.ndarray, clusters: int,
                latent: int | None, progress: Progress, token: CancelToken
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Softmax posteriors whose argmax is ``cluster`` (a clear margin, small where ``flipped``), their maximum, and
    latents scattered around a per-cluster, per-scale centroid; built in blocks of windows."""
    n, S = cluster.shape
    prob = np.empty((n, S, clusters), np.float32)
    lat = None if latent is None else np.empty((n, S, latent), np.float32)
    centroids = None if latent is None else rng.normal(0.0, 2.0, (S, clusters, latent)).astype(np.float32)
    for a in range(0, n, _CHUNK):
        token.check()
        k = cluster[a:a + _CHUNK].astype(np.int64)[..., None]
        logits = rng.standard_normal((*k.shape[:2], clusters), dtype=np.float32)
        margin = np.where(flipped[a:a + _CHUNK], rng.uniform(0.05, 0.5, k.shape[:2]),
                          rng.gamma(2.0, 1.2, k.shape[:2]) + 0.3).astype(np.float32)
        np.put_along_axis(logits, k, logits.max(axis=-1, keepdims=True) + margin[..., None], axis=-1)
        logits -= logits.max(axis=-1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=-1, keepdims=True)
        prob[a:a + _CHUNK] = logits
        if lat is not None:
            noise = rng.standard_normal((*k.shape[:2], latent), dtype=np.float32)
            noise *= 0.6
            noise += centroids[np.arange(S)[None, :], k[..., 0]]
            lat[a:a + _CHUNK] = noise
        progress(0.3 + 0.7 * min(a + _CHUNK, n) / n, "posteriors")
    conf = np.take_along_axis(prob, cluster.astype(np.int64)[..., None], axis=-1)[..., 0]
    return prob, conf, lat
