"""How cluster membership evolves through the record: counts and shares per time bin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.snippets import midpoints


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
