"""Catalogue overlays of the waveform browser, without Qt: which catalogues are loaded, which of their entries are
shown (kinds, class/quality filters), their colours, and the hits/misses of catalogued events against the windows of
chosen clusters. Drawn by :mod:`unmix.gui.views.catalog_overlay`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unmix.catalogs import Catalog, CatalogEntry, read_catalog
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

KIND_COLOURS = {"glitch": "#e6550d", "quake": "#6a3d9a", "spike": "#c51b8a", "gust": "#1f78b4",
                "dust_devil": "#33a02c", "devil": "#33a02c", "burst": "#b15928"}
"""Colours of the kinds Unmix's catalogues use; other kinds take :data:`OTHER_COLOURS` in order of appearance."""
OTHER_COLOURS = ("#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#e377c2", "#2ca02c")
HIT_COLOUR, MISS_COLOUR, OUTSIDE_COLOUR = "#1a9641", "#d7191c", "#8c8c8c"
HIT, MISS, OUTSIDE = 1, 0, -1
MAX_FILTER_VALUES = 12
"""A string field of the entries (``extra``) is offered as a filter when it has 2 to this many distinct values
(QuakeML event type, MQS class and quality); fields with more (times, names) are not."""
_NOT_FILTERS = {"lmst_start", "lmst_end"}


@dataclass
class CatalogLayer:
    """One loaded catalogue file."""

    path: str
    catalog: Catalog

    @property
    def name(self) -> str:
        return Path(self.path).name


def load_catalogs(paths: list[str], progress: Progress = no_progress, token: CancelToken = NO_CANCEL
                  ) -> list[CatalogLayer]:
    """Read each catalogue file (``unmix.catalogs.read_catalog``: MPS glitch list, QuakeML, Snuffler markers,
    ``truth.json``, Unmix's own glitch lists); a job function (QuakeML files may take seconds)."""
    layers = []
    for i, path in enumerate(paths):
        token.check()
        progress(i / max(len(paths), 1), f"reading {Path(path).name}")
        layers.append(CatalogLayer(str(path), read_catalog(path)))
    progress(1.0, f"{sum(len(layer.catalog) for layer in layers)} catalogue entries")
    return layers


def filter_fields(entries: Iterable[CatalogEntry]) -> dict[str, list[str]]:
    """Categorical string fields of the entries (e.g. ``event_type``, MQS ``class`` and ``quality``) and their
    values: the filters a QuakeML catalogue carries."""
    values: dict[str, set[str]] = {}
    for e in entries:
        for key, value in e.extra.items():
            if isinstance(value, str) and key not in _NOT_FILTERS:
                values.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in sorted(values.items()) if 2 <= len(v) <= MAX_FILTER_VALUES}


@dataclass
class CatalogSelection:
    """The loaded catalogues and what of them is shown: hidden kinds, and per filter field the allowed values."""

    layers: list[CatalogLayer] = field(default_factory=list)
    hidden_kinds: set[str] = field(default_factory=set)
    filters: dict[str, set[str]] = field(default_factory=dict)  # field → allowed values; absent: every value
    visible: bool = True

    def add(self, layers: Iterable[CatalogLayer]) -> list[CatalogLayer]:
        """Add layers (one of the same path is replaced); returns the added ones."""
        added = list(layers)
        paths = {layer.path for layer in added}
        self.layers = [layer for layer in self.layers if layer.path not in paths] + added
        return added

    def clear(self) -> None:
        self.layers.clear()
        self.hidden_kinds.clear()
        self.filters.clear()

    @property
    def paths(self) -> list[str]:
        return [layer.path for layer in self.layers]

    def all_entries(self) -> list[CatalogEntry]:
        return sorted((e for layer in self.layers for e in layer.catalog), key=lambda e: e.start)

    def kinds(self) -> list[str]:
        """Kinds in order of first appearance over the layers."""
        return list(dict.fromkeys(e.kind for layer in self.layers for e in layer.catalog))

    def kind_counts(self) -> dict[str, int]:
        """Entries of every kind that pass the filters (hidden kinds included, so the legend shows their number)."""
        counts = dict.fromkeys(self.kinds(), 0)
        for e in self.all_entries():
            if self._passes(e):
                counts[e.kind] += 1
        return counts

    def fields(self) -> dict[str, list[str]]:
        return filter_fields(self.all_entries())

    def _passes(self, e: CatalogEntry) -> bool:
        return all(str(e.extra.get(key, "")) in allowed for key, allowed in self.filters.items())

    def shown(self) -> list[CatalogEntry]:
        """Entries drawn: of a shown kind and passing every filter (time-sorted)."""
        if not self.visible:
            return []
        return [e for e in self.all_entries() if e.kind not in self.hidden_kinds and self._passes(e)]

    def colour(self, kind: str) -> str:
        if kind in KIND_COLOURS:
            return KIND_COLOURS[kind]
        others = [k for k in self.kinds() if k not in KIND_COLOURS]
        return OTHER_COLOURS[others.index(kind) % len(OTHER_COLOURS)] if kind in others else OTHER_COLOURS[0]


def _in_union(t: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Whether each time lies in the union of the ``[t0, t1)`` intervals (N, 2), non-finite ones ignored."""
    iv = intervals[np.all(np.isfinite(intervals), axis=1)]
    if not iv.size or not t.size:
        return np.zeros(t.shape, dtype=bool)
    iv = iv[np.argsort(iv[:, 0])]
    starts, ends = [float(iv[0, 0])], [float(iv[0, 1])]
    for a, b in iv[1:]:
        if a <= ends[-1]:
            ends[-1] = max(ends[-1], float(b))
        else:
            starts.append(float(a))
            ends.append(float(b))
    idx = np.searchsorted(np.asarray(starts), t, side="right") - 1
    return (idx >= 0) & (t < np.asarray(ends)[np.clip(idx, 0, None)])


def event_hits(table, onsets: np.ndarray, scale: int, clusters: Iterable[int],
               windows: np.ndarray | None = None) -> np.ndarray:
    """Per catalogued event (POSIX onset): :data:`HIT` when the onset lies in a window of ``clusters`` at ``scale``,
    :data:`MISS` when it lies only in windows of other clusters, :data:`OUTSIDE` when no window covers it (``windows``:
    a mask of the table's windows to consider, e.g. those of the record shown)."""
    onsets = np.asarray(onsets, dtype=float)
    s = table.scale_index(scale)
    mask = np.ones(table.n_windows, dtype=bool) if windows is None else np.asarray(windows, dtype=bool)
    iv = np.asarray(table.intervals[:, s], dtype=float)
    chosen = mask & np.isin(table.cluster[:, s], np.asarray(list(clusters), dtype=int))
    status = np.full(onsets.shape, OUTSIDE, dtype=np.int8)
    status[_in_union(onsets, iv[mask])] = MISS
    status[_in_union(onsets, iv[chosen])] = HIT
    return status


@dataclass
class HitSummary:
    """Events hit, missed and outside the windows, with the window-level precision/recall of the chosen clusters
    (``unmix.analysis.overlays``: windows whose sub-window holds an event onset)."""

    scale: int
    clusters: list[int]
    hits: int
    misses: int
    outside: int
    precision: float
    recall: float

    def text(self, label_of=str) -> str:
        scored = self.hits + self.misses
        share = f" ({100 * self.hits / scored:.0f} %)" if scored else ""
        names = ", ".join(label_of(k) for k in self.clusters)
        out = f"; {self.outside} outside the windows" if self.outside else ""
        return (f"cluster {names}: {self.hits} of {scored} events hit{share}, {self.misses} missed{out}; windows "
                f"with an event: precision {_fmt(self.precision)}, recall {_fmt(self.recall)}")


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.2f}"


def hit_summary(table, entries: list[CatalogEntry], scale: int, clusters: list[int],
                windows: np.ndarray | None = None) -> tuple[np.ndarray, HitSummary]:
    """:func:`event_hits` of ``entries`` and its :class:`HitSummary`."""
    from unmix.analysis.overlays import cluster_set_scores, event_flags

    onsets = np.array([e.start.timestamp for e in entries], dtype=float)
    status = event_hits(table, onsets, scale, clusters, windows)
    flags = event_flags(table, Catalog(list(entries)), scale, how="onset")
    if not clusters:
        precision = recall = float("nan")
    elif windows is None:
        precision, recall = cluster_set_scores(table, flags, scale, clusters)
    else:  # the same scores over the windows of the record shown only
        mask = np.asarray(windows, dtype=bool)
        chosen = mask & np.isin(table.cluster[:, table.scale_index(scale)], clusters)
        flags = flags & mask
        tp = int((chosen & flags).sum())
        precision = tp / chosen.sum() if chosen.any() else float("nan")
        recall = tp / flags.sum() if flags.any() else float("nan")
    return status, HitSummary(int(scale), list(clusters), int((status == HIT).sum()), int((status == MISS).sum()),
                              int((status == OUTSIDE).sum()), precision, recall)


def best_cluster(table, entries: list[CatalogEntry], scale: int) -> int | None:
    """The cluster whose windows best match the entries' onsets (highest F1, ``catalog_scores``); None without
    entries."""
    from unmix.analysis.overlays import catalog_scores, event_flags

    if not entries:
        return None
    flags = event_flags(table, Catalog(list(entries)), scale, how="onset")
    if not flags.any():
        return None
    return catalog_scores(table, flags, scale).best()
