"""Glitch evidence: per window, scale and component, the share of the window's energy the instrument's glitch model
explains.

The clusters of the default model hold most glitch windows, but those that fall inside wind bursts or weak ones in
quiet nights share clusters with them (docs/performance.md, issue #16), while the template deglitcher, which fits the
instrument's response to acceleration steps, finds them window by window. So the features can carry that evidence:
the template deglitcher (:class:`unmix.baselines.template.TemplateDeglitcher`, default settings; the features'
response file when they have one, else the InSight VBB poles and zeros) runs on the record as it is read, before any
response removal, and for every block of the smallest scale the energy of
what it removes (glitches and spikes) and of the record, each about the block's own mean (so offsets and drifts
longer than a block do not count), is averaged over each window's sub-window at each scale and stored per component
(``glitch/SCALE`` in a feature store: (N, C, 2), glitch and record power). The share of a window (:func:`share`) is
the ratio of their sums over the components, clipped to [0, 1]. The model's glitch class
(``ModelConfig.glitch_share``) reads it.
"""

from __future__ import annotations

import numpy as np
from obspy import Stream

from unmix.jobs import NO_CANCEL, CancelToken


def glitch_parts(stream: Stream, inventory: str | None = None, token: CancelToken = NO_CANCEL) -> np.ndarray:
    """(C, L) what the template deglitcher removes from each trace of ``stream`` (glitches plus spikes), with the
    response file ``inventory`` (None: the InSight VBB poles and zeros)."""
    from unmix.baselines.template import TemplateDeglitcher

    result = TemplateDeglitcher(inventory=inventory).separate(stream, token=token)
    n = min(tr.stats.npts for tr in stream)
    return np.stack([sum(np.asarray(part[i].data, dtype=np.float64)[:n] for part in result.removed.values())
                     for i in range(len(stream))])


def block_energy(x: np.ndarray, block: int) -> np.ndarray:
    """(C, n_blocks) energy of each whole block of ``block`` samples about the block's mean."""
    nb = x.shape[-1] // block
    b = np.asarray(x[..., :nb * block], dtype=np.float64).reshape(x.shape[0], nb, block)
    return np.sum((b - b.mean(axis=-1, keepdims=True)) ** 2, axis=-1)


def window_energies(x: np.ndarray, glitches: np.ndarray, block: int, first_blocks: np.ndarray, length: int
                    ) -> np.ndarray:
    """(n, C, 2) float32 mean power of ``glitches`` and of the record ``x`` (C, L), each about its blocks' means, in
    windows of ``length`` blocks starting at block ``first_blocks``."""
    cum = [np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(block_energy(a, block), axis=-1)], axis=-1)
           for a in (glitches, x)]
    parts = [(c[:, first_blocks + length] - c[:, first_blocks]).T / (length * block) for c in cum]
    return np.stack(parts, axis=-1).astype(np.float32)


def share(energies: np.ndarray) -> np.ndarray:
    """(N,) share of each window's energy, over all its components, that the glitch model explains, clipped to
    [0, 1] (0 for a flat window), from :func:`window_energies` ``(N, C, 2)``."""
    g, e = energies[..., 0].sum(axis=-1, dtype=np.float64), energies[..., 1].sum(axis=-1, dtype=np.float64)
    return np.clip(np.divide(g, e, out=np.zeros_like(g), where=e > 0), 0.0, 1.0)


def record_energies(stream: Stream, intervals: dict[int, np.ndarray], block: int, inventory: str | None = None,
                    token: CancelToken = NO_CANCEL) -> dict[int, np.ndarray]:
    """Per scale, (n, C, 2) glitch and record power of the windows whose sub-windows span ``intervals[scale]``
    (POSIX s) in the contiguous record ``stream`` (one trace per component, in the features' order; ``inventory``:
    as :func:`glitch_parts`)."""
    x = np.stack([np.asarray(tr.data, dtype=np.float64) for tr in stream])
    g = glitch_parts(stream, inventory, token)
    x = x[:, :g.shape[1]]
    t0, fs = float(stream[0].stats.starttime.timestamp), float(stream[0].stats.sampling_rate)
    out = {}
    for s, iv in intervals.items():
        first = np.rint((iv[:, 0] - t0) * fs / block).astype(np.int64)
        out[s] = window_energies(x, g, block, first, int(s) // block)
    return out


def store_shares(store, scale: int, token: CancelToken = NO_CANCEL) -> np.ndarray:
    """(N,) float32 :func:`share` of every window of a feature store with glitch evidence at ``scale``, read
    :attr:`~unmix.features.FeatureStore.chunk_windows` windows at a time (a mission's store is not read at once)."""
    out = np.empty(store.n_windows, np.float32)
    step = store.chunk_windows
    for a in range(0, store.n_windows, step):
        token.check()
        b = min(a + step, store.n_windows)
        out[a:b] = share(store.glitch_energy(scale, a, b))
    return out


__all__ = ["block_energy", "glitch_parts", "record_energies", "share", "store_shares", "window_energies"]
