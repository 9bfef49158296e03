"""When each cluster happens: LMST time of day of the windows of every cluster, with histograms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.snippets import midpoints, window_lmst_hours


@dataclass
class TimeOfDay:
    """Per cluster (``clusters[k]``): LMST hours of its sub-window midpoints and their histogram over 0–24 h.

    ``share[k]`` is ``counts[k]`` divided by the cluster's size (the published "probability" histogram), so clusters
    of very different sizes can be compared; ``totals[k]`` is that size.
    """

    scale: int
    clusters: np.ndarray  # (K,)
    edges: np.ndarray  # (B + 1,) hours
    counts: np.ndarray  # (K, B)
    share: np.ndarray  # (K, B)
    hours: list[np.ndarray]  # per cluster, LMST hours of each member
    totals: np.ndarray  # (K,)

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def peak_hours(self) -> np.ndarray:
        """Centre of each cluster's fullest bin (NaN for an empty cluster)."""
        out = self.centers[np.argmax(self.counts, axis=1)].astype(float)
        out[self.totals == 0] = np.nan
        return out

    def circular_mean_hours(self) -> np.ndarray:
        """Circular mean time of day of each cluster (23:00 and 01:00 average to 00:00, not 12:00)."""
        out = np.full(len(self.clusters), np.nan)
        for k, h in enumerate(self.hours):
            if h.size:
                angle = np.angle(np.mean(np.exp(2j * np.pi * h / 24.0)))
                out[k] = (angle * 24.0 / (2 * np.pi)) % 24.0
        return out


def time_of_day(
    table: ClusterTable,
    scale: int,
    bin_hours: float = 0.5,
    min_confidence: float = 0.0,
    clusters: list[int] | None = None,
) -> TimeOfDay:
    """LMST time-of-day histograms (bins of ``bin_hours``) of every cluster's windows at ``scale``.

    Windows below ``min_confidence`` are left out; ``clusters`` defaults to every cluster of the model.
    """
    if not 0 < bin_hours <= 24:
        raise ConfigError(f"bin width must be in (0, 24] hours, got {bin_hours}")
    s = table.scale_index(scale)
    hours = window_lmst_hours(table, scale)
    ok = np.isfinite(hours) & np.isfinite(midpoints(table, scale)) & (table.confidence[:, s] >= min_confidence)
    ks = np.arange(table.n_clusters) if clusters is None else np.asarray(clusters, dtype=int)
    edges = np.linspace(0.0, 24.0, int(round(24.0 / bin_hours)) + 1)
    per = [hours[ok & (table.cluster[:, s] == k)] for k in ks]
    counts = np.stack([np.histogram(h, bins=edges)[0] for h in per]) if len(ks) else np.zeros((0, len(edges) - 1))
    totals = counts.sum(axis=1)
    share = np.divide(counts, totals[:, None], out=np.zeros(counts.shape), where=totals[:, None] > 0)
    return TimeOfDay(int(scale), ks, edges, counts, share, per, totals)
