"""Align the clusters of two clusterings of the same windows (runs, training seeds, seasons, scales).

Cluster numbers are arbitrary: two models trained with different seeds may find the same groups under different
numbers. :func:`match_clusters` pairs the clusters of ``a`` with those of ``b`` by the Hungarian method on their
co-occurrence (contingency) matrix, i.e. the one-to-one pairing that puts the most windows on matched pairs; the
clusterings may have different numbers of clusters (the surplus stays unmatched). :func:`match_tables` does this per
scale for two :class:`unmix.clusters.ClusterTable` on the windows they share (same sub-window start time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError

#: Sub-window start times closer than this (seconds) are the same window (POSIX float rounding, not sampling jitter).
TIME_TOLERANCE = 1e-3


@dataclass
class Matching:
    """The pairing of ``a``'s clusters with ``b``'s and how well the two clusterings agree.

    ``mapping`` maps a cluster of ``a`` to its matched cluster of ``b`` (clusters left over when the numbers differ
    are absent); ``agreement`` is the fraction of windows whose two clusters form a matched pair; ``ari`` the adjusted
    Rand index (independent of the numbering); ``contingency[i, j]`` counts windows in ``clusters_a[i]`` and
    ``clusters_b[j]``.
    """

    mapping: dict[int, int]
    agreement: float
    ari: float
    contingency: np.ndarray
    clusters_a: np.ndarray
    clusters_b: np.ndarray
    n_windows: int

    def relabel(self, a: np.ndarray, unmatched: int = -1) -> np.ndarray:
        """``a``'s cluster numbers expressed in ``b``'s numbering (``unmatched`` for clusters without a partner)."""
        a = np.asarray(a)
        out = np.full(a.shape, unmatched, dtype=np.int64)
        for ka, kb in self.mapping.items():
            out[a == ka] = kb
        return out


def match_clusters(a: np.ndarray, b: np.ndarray) -> Matching:
    """Hungarian matching of the clusters of ``a`` and ``b`` (cluster numbers of the same windows, same order)."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ConfigError(f"the two clusterings cover different numbers of windows ({a.size} and {b.size})")
    if a.size == 0:
        raise ConfigError("no windows to match")
    ka, ia = np.unique(a, return_inverse=True)
    kb, ib = np.unique(b, return_inverse=True)
    table = np.zeros((len(ka), len(kb)), np.int64)
    np.add.at(table, (ia, ib), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = {int(ka[r]): int(kb[c]) for r, c in zip(rows, cols, strict=True)}
    agreement = float(table[rows, cols].sum() / a.size)
    return Matching(mapping, agreement, ari_from_contingency(table), table, ka, kb, int(a.size))


def ari_from_contingency(table: np.ndarray) -> float:
    """Hubert–Arabie adjusted Rand index of the two partitions whose contingency table is ``table``.

    1 for identical partitions (whatever the numbering), ≈ 0 for independent ones; 1 when both are trivial (one
    cluster each, or all singletons). The same value as ``sklearn.metrics.adjusted_rand_score``.
    """
    t = np.asarray(table, np.float64)
    n = t.sum()
    if n < 2:
        return 1.0

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index, rows, cols = pairs(t), pairs(t.sum(1)), pairs(t.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def shared_windows(a: np.ndarray, b: np.ndarray, tolerance: float = TIME_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` with ``|a[ia] - b[ib]| ≤ tolerance`` (start times, POSIX s), in the time order of ``a``.

    Each start is paired at most once: a repeated start (overlapping inputs) pairs its first occurrence.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ua, ia = np.unique(a, return_index=True)
    ub, ib = np.unique(b, return_index=True)
    if not len(ua) or not len(ub):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.clip(np.searchsorted(ub, ua), 1, len(ub) - 1) if len(ub) > 1 else np.zeros(len(ua), np.int64)
    left = np.maximum(pos - 1, 0)
    nearest = np.where(np.abs(ub[left] - ua) <= np.abs(ub[pos] - ua), left, pos)
    ok = np.abs(ub[nearest] - ua) <= tolerance
    ok[ok] = _first_occurrence(nearest[ok])  # one-to-one even if two starts of a fall within one tolerance
    return ia[ok].astype(np.int64), ib[nearest[ok]].astype(np.int64)


def _first_occurrence(x: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value of ``x``."""
    first = np.zeros(len(x), bool)
    first[np.unique(x, return_index=True)[1]] = True
    return first


def match_tables(a: ClusterTable, b: ClusterTable, scales: tuple[int, ...] | None = None,
                 tolerance: float = TIME_TOLERANCE) -> dict[int, Matching]:
    """Per scale, the matching of ``a``'s clusters with ``b``'s on the windows both tables hold.

    Windows are paired by the start time of their sub-window at that scale. ``scales`` defaults to every scale the
    two tables share; a scale missing from either table, or no shared window, is a :class:`ConfigError`.
    """
    if scales is None:
        scales = tuple(s for s in a.scales if s in b.scales)
        if not scales:
            raise ConfigError(f"the tables share no scale (scales {list(a.scales)} and {list(b.scales)})")
    out = {}
    for s in scales:
        ja, jb = a.scale_index(s), b.scale_index(s)
        ia, ib = shared_windows(a.intervals[:, ja, 0], b.intervals[:, jb, 0], tolerance)
        if len(ia) == 0:
            raise ConfigError(f"the tables share no window at scale {s} (no common sub-window start time)")
        out[int(s)] = match_clusters(a.cluster[ia, ja], b.cluster[ib, jb])
    return out
