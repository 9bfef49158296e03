"""How cluster membership evolves through the record: counts and shares per time bin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.snippets import midpoints

CLUSTER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d")
"""One colour per cluster (tab10 then darker tab20c tones); the same in every view."""


def occupancy_runs(intervals: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge windows into runs of one cluster: ``(starts, ends, cluster)`` in the intervals' time unit.

    Each instant is given to the window whose sub-window is centred nearest to it (at the finest scale, with hop
    equal to the scale, that is the sub-window itself); no window reaches beyond its own sub-window, so gaps in the
    windows stay empty. Consecutive pieces of the same cluster that touch are merged.
    """
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    clusters = np.asarray(clusters).reshape(-1)
    if intervals.shape[0] == 0:
        empty = np.empty(0)
        return empty, empty, np.empty(0, dtype=int)
    order = np.argsort(intervals.mean(axis=1), kind="stable")
    lo, hi, k = intervals[order, 0], intervals[order, 1], clusters[order].astype(int)
    centre = (lo + hi) / 2
    mid = (centre[1:] + centre[:-1]) / 2
    starts = np.maximum(lo, np.concatenate([[-np.inf], mid]))
    ends = np.minimum(hi, np.concatenate([mid, [np.inf]]))
    keep = ends > starts
    starts, ends, k = starts[keep], ends[keep], k[keep]
    if starts.size == 0:
        return starts, ends, k
    tol = 1e-6 * max(float(np.median(ends - starts)), 1e-9)
    new_run = np.ones(starts.size, dtype=bool)
    new_run[1:] = (k[1:] != k[:-1]) | (starts[1:] - ends[:-1] > tol)
    first = np.flatnonzero(new_run)
    last = np.concatenate([first[1:] - 1, [starts.size - 1]])
    return starts[first], ends[last], k[first]


@dataclass
class Occupancy:
    """``counts[b, k]``: windows of cluster k whose sub-window midpoint falls in time bin b (POSIX ``edges``)."""

    scale: int
    edges: np.ndarray  # (B + 1,) POSIX seconds
    counts: np.ndarray  # (B, K)
    share: np.ndarray  # (B, K), rows sum to 1 where the bin has windows

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def occupancy_over_time(table: ClusterTable, scale: int, bin_seconds: float | None = None,
                        target_bins: int = 96) -> Occupancy:
    """Cluster counts per time bin at ``scale``; by default about ``target_bins`` bins, never finer than the scale."""
    mid = midpoints(table, scale)
    ok = np.isfinite(mid)
    if not ok.any():
        raise ConfigError("the cluster table has no windows with valid times")
    s = table.scale_index(scale)
    lo, hi = float(mid[ok].min()), float(mid[ok].max())
    duration = float(np.nanmedian(np.diff(table.intervals[:, s], axis=1)))
    if bin_seconds is None:
        bin_seconds = max((hi - lo) / target_bins, duration, 1.0)
    if bin_seconds <= 0:
        raise ConfigError(f"bin width must be > 0 s, got {bin_seconds}")
    nb = max(int(np.ceil((hi - lo) / bin_seconds + 1e-9)), 1)
    edges = lo - bin_seconds / 2 + bin_seconds * np.arange(nb + 2)
    edges = edges[: np.searchsorted(edges, hi, side="right") + 1]
    b = np.clip(np.searchsorted(edges, mid[ok], side="right") - 1, 0, len(edges) - 2)
    counts = np.zeros((len(edges) - 1, table.n_clusters), dtype=np.int64)
    np.add.at(counts, (b, table.cluster[ok, s].astype(int)), 1)
    tot = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, tot, out=np.zeros(counts.shape), where=tot > 0)
    return Occupancy(int(scale), edges, counts, share)
