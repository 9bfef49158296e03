"""Catalogue overlays: which windows contain a catalogued event, and how well each cluster matches the catalogue."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.catalogs import Catalog
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError

HOW = ("onset", "overlap")


def event_counts(table: ClusterTable, catalog: Catalog, scale: int, how: str = "onset",
                 kinds: str | list[str] | None = None) -> np.ndarray:
    """Number of catalogue events in every window's sub-window [t0, t1) at ``scale``.

    ``how='onset'`` counts events whose start lies in the sub-window (glitch lists: one window per glitch);
    ``how='overlap'`` counts events whose [start, end] overlaps it (marsquakes lasting many windows).
    ``kinds`` keeps only entries of those kinds ('glitch', 'quake', ...).
    """
    if how not in HOW:
        raise ConfigError(f"unknown overlay rule {how!r}; choose one of {', '.join(HOW)}")
    wanted = None if kinds is None else {kinds} if isinstance(kinds, str) else set(kinds)
    entries = [e for e in catalog if wanted is None or e.kind in wanted]
    starts = np.sort([e.start.timestamp for e in entries]) if entries else np.zeros(0)
    ends = np.sort([max(e.end.timestamp, e.start.timestamp) for e in entries]) if entries else np.zeros(0)
    iv = table.intervals[:, table.scale_index(scale)]
    t0, t1 = iv[:, 0], iv[:, 1]
    before_end = np.searchsorted(starts, t1, side="left")  # events starting before t1
    if how == "onset":
        counts = before_end - np.searchsorted(starts, t0, side="left")
    else:
        counts = before_end - np.searchsorted(ends, t0, side="left")  # minus those over before t0
    counts[~(np.isfinite(t0) & np.isfinite(t1))] = 0
    return counts.astype(np.int64)


def event_flags(table: ClusterTable, catalog: Catalog, scale: int, how: str = "onset",
                kinds: str | list[str] | None = None) -> np.ndarray:
    """True for windows whose sub-window at ``scale`` contains at least one catalogue event (see event_counts)."""
    return event_counts(table, catalog, scale, how, kinds) > 0


@dataclass
class CatalogScores:
    """Per cluster: windows, windows with an event, precision (flagged share of the cluster) and recall (share of
    all flagged windows that fall in the cluster); ``enrichment`` is precision over the overall flagged share."""

    scale: int
    clusters: np.ndarray
    n_windows: np.ndarray
    n_flagged: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    enrichment: np.ndarray
    total_flagged: int
    base_rate: float

    def best(self) -> int:
        """Cluster with the highest F1 against the catalogue."""
        return int(self.clusters[np.nanargmax(np.nan_to_num(self.f1, nan=-1.0))])

    def to_dict(self) -> dict:
        return {"scale": self.scale, "total_flagged": self.total_flagged, "base_rate": self.base_rate,
                "clusters": [{"cluster": int(k), "windows": int(n), "flagged": int(f), "precision": _num(p),
                              "recall": _num(r), "f1": _num(f1), "enrichment": _num(e)}
                             for k, n, f, p, r, f1, e in zip(self.clusters, self.n_windows, self.n_flagged,
                                                             self.precision, self.recall, self.f1, self.enrichment,
                                                             strict=True)]}


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _safe_div(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def catalog_scores(table: ClusterTable, flags: np.ndarray, scale: int) -> CatalogScores:
    """Window-level precision and recall of every cluster at ``scale`` against catalogue ``flags`` (N,)."""
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != (table.n_windows,):
        raise ConfigError(f"flags must have one entry per window ({table.n_windows}), got shape {flags.shape}")
    c = table.cluster[:, table.scale_index(scale)].astype(int)
    K = table.n_clusters
    n = np.bincount(c, minlength=K)
    f = np.bincount(c[flags], minlength=K)
    total = int(flags.sum())
    precision, recall = _safe_div(f, n), _safe_div(f, np.full(K, total))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    f1[(f == 0) & (n > 0) & (total > 0)] = 0.0
    base = total / max(table.n_windows, 1)
    return CatalogScores(int(scale), np.arange(K), n, f, precision, recall, f1, _safe_div(precision, np.full(K, base)),
                         total, base)


def cluster_set_scores(table: ClusterTable, flags: np.ndarray, scale: int, clusters) -> tuple[float, float]:
    """(precision, recall) of the union of ``clusters`` as a detector of flagged windows at ``scale``."""
    flags = np.asarray(flags, dtype=bool)
    hit = np.isin(table.cluster[:, table.scale_index(scale)], np.atleast_1d(clusters))
    tp = int((hit & flags).sum())
    p = tp / hit.sum() if hit.any() else float("nan")
    r = tp / flags.sum() if flags.any() else float("nan")
    return float(p), float(r)
