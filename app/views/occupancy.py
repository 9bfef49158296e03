"""Cluster occupancy on the waveform browser: coloured spans behind the traces, a scale chooser and a legend."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPicture
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QMenu, QWidget

from unmix.analysis.occupancy import CLUSTER_COLOURS, occupancy_runs
from unmix.intervals import merge_intervals

NO_WINDOWS_COLOUR = QColor(90, 90, 90, 110)
"""Hatching of the spans without any window at the scale shown."""


def cluster_colour(k: int, alpha: int = 255) -> QColor:
    colour = QColor(CLUSTER_COLOURS[int(k) % len(CLUSTER_COLOURS)])
    colour.setAlpha(alpha)
    return colour


class FullHeightSpans(pg.GraphicsObject):
    """Items drawn over the whole height of their view between ``starts`` and ``ends`` (data x): the height follows
    the view, so the item never autoranges y. Subclasses set ``starts``/``ends`` (sorted by start) and paint."""

    starts: np.ndarray
    ends: np.ndarray
    _picture: QPicture | None = None

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802, N803
        if ax == 0 and self.starts.size:
            return float(self.starts.min()), float(self.ends.max())
        return None, None

    def viewRangeChanged(self) -> None:  # noqa: N802
        self.prepareGeometryChange()
        self._picture = None
        self.update()

    def _view_y(self) -> tuple[float, float]:
        vb = self.getViewBox()
        if vb is None:
            return 0.0, 1.0
        y0, y1 = vb.viewRange()[1]
        pad = 0.05 * (y1 - y0)
        return y0 - pad, y1 + pad

    def boundingRect(self) -> QRectF:  # noqa: N802
        if not self.starts.size:
            return QRectF()
        y0, y1 = self._view_y()
        x0, x1 = float(self.starts.min()), float(self.ends.max())
        return QRectF(x0, y0, max(x1 - x0, 1e-9), y1 - y0)


class SpanItem(FullHeightSpans):
    """Coloured full-height spans ``[start, end)`` in data x; the height follows the view so it never autoranges y."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, clusters: np.ndarray, alpha: int = 60) -> None:
        super().__init__()
        self.starts, self.ends, self.clusters = np.asarray(starts), np.asarray(ends), np.asarray(clusters)
        self.alpha = alpha
        self.setZValue(-20)
        self._picture: QPicture | None = None
        self._y: tuple = ()

    def paint(self, painter: QPainter, *_args) -> None:
        vb = self.getViewBox()
        (x0, x1), _ = vb.viewRange() if vb is not None else ((-np.inf, np.inf), None)
        width = max(int(vb.width()), 1) if vb is not None else 0
        y = self._view_y()
        key = (y, x0, x1, width)
        if self._picture is None or key != self._y:
            self._y = key
            self._picture = QPicture()
            p = QPainter(self._picture)
            p.setPen(Qt.PenStyle.NoPen)
            starts, ends, clusters = self.visible_runs(x0, x1, width)
            for k in np.unique(clusters):
                p.setBrush(cluster_colour(int(k), self.alpha))
                sel = clusters == k
                for a, b in zip(starts[sel], ends[sel], strict=True):
                    p.drawRect(QRectF(float(a), y[0], float(b - a), y[1] - y[0]))
            p.end()
        self._picture.play(painter)

    def visible_runs(self, x0: float, x1: float, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The runs drawn for the view ``[x0, x1]`` of ``width`` pixels: those in view (long records have tens of
        thousands), one per pixel column at most (:func:`pixel_runs`) when there are more than pixels."""
        i0 = int(np.searchsorted(self.ends, x0, side="left"))
        i1 = int(np.searchsorted(self.starts, x1, side="right"))
        starts, ends, clusters = self.starts[i0:i1], self.ends[i0:i1], self.clusters[i0:i1]
        if width and starts.size > width:
            return pixel_runs(starts, ends, clusters, x0, x1, width)
        return starts, ends, clusters


def pixel_runs(starts: np.ndarray, ends: np.ndarray, clusters: np.ndarray, x0: float, x1: float, width: int,
               samples: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs (sorted, disjoint) decimated to ``width`` pixel columns of ``[x0, x1]``: each column takes the cluster
    found most often at ``samples`` points across it (none where no run covers any), and neighbouring columns of one
    cluster merge. What the runs look like at that width, in at most ``width`` runs."""
    step = (x1 - x0) / width
    at = x0 + (np.arange(width * samples) + 0.5) * (step / samples)
    j = np.searchsorted(starts, at, side="right") - 1
    covered = (j >= 0) & (at < ends[np.maximum(j, 0)])
    column = np.arange(at.size) // samples
    K = int(clusters.max()) + 1 if clusters.size else 1
    votes = np.bincount(column[covered] * K + clusters[j[covered]].astype(np.int64),
                        minlength=width * K).reshape(width, K)
    best = np.where(votes.max(axis=1) > 0, votes.argmax(axis=1), -1)
    edge = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    last = np.r_[edge[1:], width]
    keep = best[edge] >= 0
    return x0 + edge[keep] * step, x0 + last[keep] * step, best[edge][keep]


SEPARATE_ACTION = "Separate this cluster's windows…"
"""The action on a cluster's chip that opens the "Separate this cluster's windows" dialog."""


class Legend(QWidget):
    """Colour chips with each cluster's number of windows; a chip's context menu offers :data:`SEPARATE_ACTION`
    (``separate_requested(cluster)``)."""

    separate_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(8)
        self.labels: list[QLabel] = []

    def set_counts(self, counts: np.ndarray | list[int], label_of: Callable[[int], str] = str,
                   note: str = "") -> None:
        """One chip per cluster: ``label_of(k)`` (the table's ``label``: number and name) and its windows in the
        record shown; ``note`` (e.g. the record has no windows in the table) replaces the chips when there are none."""
        for label in self.labels:
            self.row.removeWidget(label)
            label.deleteLater()
        self.labels = []
        if note and not int(np.sum(counts)):
            label = QLabel(html.escape(note))
            label.setToolTip(note)
            self.row.addWidget(label)
            self.labels.append(label)
            return
        for k, n in enumerate(counts):
            text = html.escape(label_of(k))
            label = QLabel(f"<span style='color:{CLUSTER_COLOURS[k % len(CLUSTER_COLOURS)]}'>■</span> {text}: {int(n)}")
            label.setToolTip(f"cluster {text}: {int(n)} windows of this record at this scale (right-click: "
                             "separate the cluster's most confident windows)")
            label.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            label.customContextMenuRequested.connect(lambda pos, k=k, chip=label: self._menu(k, chip, pos))
            self.row.addWidget(label)
            self.labels.append(label)

    def cluster_menu(self, k: int) -> QMenu:
        """The context menu of cluster ``k``'s chip."""
        menu = QMenu(self)
        action = menu.addAction(SEPARATE_ACTION)
        action.setToolTip("separate the most confident windows of this cluster at this scale and export them "
                          "(unmix separate --target-cluster)")
        action.triggered.connect(lambda: self.separate_requested.emit(int(k)))
        return menu

    def _menu(self, k: int, chip: QLabel, pos) -> None:
        menu = self.cluster_menu(k)
        menu.exec(chip.mapToGlobal(pos))
        menu.deleteLater()


class OccupancyBar(QWidget):
    """Toggle, scale chooser and legend for the cluster spans; emits ``changed(visible, scale)``, and
    ``separate_requested(cluster, scale)`` from a chip's context menu."""

    changed = Signal(bool, int)
    separate_requested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QCheckBox("Clusters")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Colour each window by its cluster at the chosen scale")
        self.scale_combo = QComboBox()
        self.scale_combo.setToolTip("Scale of the clustering shown")
        self.legend = Legend()
        self.no_windows = QLabel("")
        self.no_windows.setStyleSheet("color: #555")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.toggle)
        row.addWidget(QLabel("scale"))
        row.addWidget(self.scale_combo)
        row.addSpacing(8)
        row.addWidget(self.legend)
        row.addSpacing(8)
        row.addWidget(self.no_windows)
        row.addStretch(1)
        for w in (self.toggle, self.scale_combo):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.toggle.toggled.connect(self._emit)
        self.scale_combo.currentIndexChanged.connect(self._emit)
        self.legend.separate_requested.connect(self._separate)

    def set_scales(self, scales: tuple[int, ...], rate: float | None, current: int | None = None) -> None:
        self.scale_combo.blockSignals(True)
        self.scale_combo.clear()
        for s in scales:
            text = f"{s} samples" if not rate else f"{s} ({_duration(s / rate)})"
            self.scale_combo.addItem(text, int(s))
        index = self.scale_combo.findData(int(current)) if current is not None else 0
        self.scale_combo.setCurrentIndex(max(index, 0))
        self.scale_combo.blockSignals(False)

    def scale(self) -> int | None:
        data = self.scale_combo.currentData()
        return None if data is None else int(data)

    def set_scale(self, scale: int) -> None:
        index = self.scale_combo.findData(int(scale))
        if index >= 0:
            self.scale_combo.setCurrentIndex(index)

    def _emit(self, *_args) -> None:
        scale = self.scale()
        if scale is not None:
            self.changed.emit(self.toggle.isChecked(), scale)

    def _separate(self, cluster: int) -> None:
        scale = self.scale()
        if scale is not None:
            self.separate_requested.emit(int(cluster), scale)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


class OccupancyOverlay:
    """Draws a :class:`~unmix.clusters.ClusterTable` at one scale behind every row of a waveform browser.

    The browser rebuilds its plots when the record or filter changes; call :meth:`redraw` then (the main window
    connects it to the browser's ``display_changed``).
    """

    def __init__(self, waveform, bar: OccupancyBar) -> None:
        self.waveform = waveform
        self.bar = bar
        self.table = None
        self.visible = True
        self.scale: int | None = None
        self.items: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []
        self.marked: tuple[float, float] | None = None
        self.gaps: list[tuple[float, float, str]] = []  # spans without windows (relative s) and why
        self._wanted: tuple[tuple, np.ndarray] | None = None  # (table, record, span) → its windows' mask
        self._extent: tuple | None = None  # the table's window_extent, once needed
        bar.changed.connect(self._changed)

    def set_table(self, table) -> None:
        """Show ``table`` (None: remove the overlay); keeps the chosen scale when the new table has it."""
        self.table = table
        self._wanted = self._extent = None
        if table is None:
            self.bar.hide()
            self.clear()
            return
        rate = table.meta.get("sampling_rate")
        scale = self.scale if self.scale in table.scales else table.scales[0]
        self.bar.set_scales(table.scales, float(rate) if rate else None, scale)
        self.scale = scale
        self.bar.show()
        self.redraw()

    def _changed(self, visible: bool, scale: int) -> None:
        self.visible, self.scale = visible, scale
        self.redraw()

    def clear(self) -> None:
        for plot, item in self.items:
            if plot in self.waveform.plots:
                plot.removeItem(item)
        self.items = []

    def wanted(self) -> np.ndarray:
        """Mask of the table's windows that belong to the record shown (never the other records' windows); kept
        while the table and the record stay (a mission table has millions of windows)."""
        display = self.waveform.display
        key = (id(self.table), None if display is None else (display.key, display.span, display.t_ref))
        if self._wanted is None or self._wanted[0] != key:
            if display is not None and self._extent is None:
                self._extent = window_extent(self.table)
            self._wanted = (key, record_windows(self.table, display, self._extent))
        return self._wanted[1]

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs of the current scale in the browser's relative seconds (only windows of the shown record)."""
        display, table = self.waveform.display, self.table
        s = table.scale_index(self.scale)
        wanted = self.wanted()
        starts, ends, k = occupancy_runs(table.intervals[wanted, s], table.cluster[wanted, s])
        t_ref = display.t_ref if display is not None else 0.0
        return starts - t_ref, ends - t_ref, k

    def mark(self, span: tuple[float, float] | None) -> None:
        """Outline one window (POSIX seconds) on every row, e.g. the one picked in the latent space."""
        self.marked = span
        self.redraw()

    def redraw(self) -> None:
        self.clear()
        table = self.table
        if self.marked is not None and self.waveform.display is not None:
            t_ref = self.waveform.display.t_ref
            for plot in self.waveform.plots:
                item = pg.LinearRegionItem((self.marked[0] - t_ref, self.marked[1] - t_ref), movable=False,
                                           brush=(0, 0, 0, 25), pen=pg.mkPen("k", width=2))
                item.setZValue(-10)
                plot.addItem(item, ignoreBounds=True)
                self.items.append((plot, item))
        if table is None or self.scale is None:
            return
        scale, display = self.scale, self.waveform.display
        wanted = self.wanted()
        s = table.scale_index(scale)
        counts = np.bincount(table.cluster[wanted, s].astype(int), minlength=table.n_clusters)[: table.n_clusters]
        self.bar.legend.set_counts(counts, lambda k: table.label(scale, k),
                                   note="no windows of this record in the cluster table")
        self.gaps = []
        if display is not None:
            rate = table.meta.get("sampling_rate")
            self.gaps = no_window_spans(display, table.intervals[wanted, s], scale, max(table.scales),
                                        float(rate) if rate else None)
        total = sum(b - a for a, b, _ in self.gaps)
        self.bar.no_windows.setText(f"▨ no windows: {len(self.gaps)} span{'s' * (len(self.gaps) != 1)}, "
                                    f"{_duration(total)}" if self.gaps else "")
        self.bar.no_windows.setToolTip("Hatched: no window is classified there at this scale. Why:\n"
                                       + "\n".join(sorted({why for *_ab, why in self.gaps})) if self.gaps else "")
        if not self.visible or display is None or not self.waveform.plots:
            return
        starts, ends, k = self.runs()
        for plot in self.waveform.plots:
            item = SpanItem(starts, ends, k)
            plot.addItem(item, ignoreBounds=True)
            self.items.append((plot, item))
            if self.gaps:
                hatch = NoWindowsItem(self.gaps)
                plot.addItem(hatch, ignoreBounds=True)
                self.items.append((plot, hatch))


def _record_slots(table) -> tuple[np.ndarray, np.ndarray] | None:
    """The record keys of the table's inputs in one array, and each window's index into it (None when the table
    does not say which record a window is from)."""
    if table.input_index is None or table.record_index is None or not table.inputs:
        return None
    try:
        names = [[str(r.get("key", "")) for r in inp.get("records", [])] for inp in table.inputs]
    except (AttributeError, TypeError):
        return None
    sizes = np.array([len(n) for n in names], dtype=np.int64)
    ii, rr = np.asarray(table.input_index, np.int64), np.asarray(table.record_index, np.int64)
    if ii.size and (ii.min() < 0 or ii.max() >= len(names) or rr.min() < 0 or (rr >= sizes[ii]).any()):
        return None
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.array([k for n in names for k in n] or [""]), offsets[ii] + rr


def window_keys(table) -> np.ndarray | None:
    """Record key of every window, from the table's inputs (None when the table does not say)."""
    slots = _record_slots(table)
    return None if slots is None else slots[0][slots[1]]


def window_key(table, index: int) -> str | None:
    """Record key of window ``index`` (None when the table does not say)."""
    try:
        i, j = int(table.input_index[index]), int(table.record_index[index])
        return str(table.inputs[i]["records"][j].get("key", "")) if i >= 0 and j >= 0 else None
    except (IndexError, KeyError, TypeError, AttributeError):
        return None


def window_extent(table) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Each window's earliest start and latest end over the scales (POSIX s) and its record slot
    (:func:`_record_slots`): what :func:`record_windows` reads, worth keeping for a table of millions of windows."""
    iv = np.asarray(table.intervals, dtype=np.float64)
    return iv[:, :, 0].min(axis=1), iv[:, :, 1].max(axis=1), _record_slots(table)


def record_windows(table, display, extent: tuple | None = None) -> np.ndarray:
    """Mask of ``table``'s windows in the record ``display`` shows: its record key (when the table names records)
    and its time span. A record without windows gets an empty mask, never every window of the table. ``extent``:
    the table's :func:`window_extent`, when kept."""
    n = table.n_windows
    if display is None:
        return np.ones(n, dtype=bool)
    lo, hi = display.span
    lo, hi = lo + display.t_ref, hi + display.t_ref
    first, last, slots = window_extent(table) if extent is None else extent
    wanted = (last > lo) & (first <= hi)
    if slots is not None:
        names, slot = slots
        wanted &= (names == display.key.split("#")[0])[slot]
    return wanted


def no_window_spans(display, intervals: np.ndarray, scale: int, window: int,
                    rate: float | None) -> list[tuple[float, float, str]]:
    """Parts of the record shown (relative seconds) that no window covers at this scale, each with the reason.

    ``intervals``: the record's windows at the scale (POSIX seconds); ``window``: the feature window (the largest
    scale). Features keep each window's last sub-window at the finer scales, so the first ``window - scale`` samples
    of a record (and of each segment after a gap) have no window of their own; gaps have no samples at all.
    """
    data = merge_intervals([(seg.t0, seg.t1 + seg.dt) for tr in display.traces.values() for seg in tr.segments])
    if not data:
        return []
    covered = _union(np.asarray(intervals, dtype=np.float64).reshape(-1, 2) - display.t_ref)
    dt = min(seg.dt for tr in display.traces.values() for seg in tr.segments)
    tol = 1.5 * dt
    if not covered:
        return [(a, b, "this record has no windows in the cluster table (features of another record or not "
                       "computed)") for a, b in data]
    # a span explained by the window length is at most one window long (a longer one means windows are missing)
    longest = window / rate if rate else window * dt
    lo, hi = data[0][0], data[-1][1]
    holes, cursor = [], lo
    for a, b in covered:
        if a > cursor + tol:
            holes.append((cursor, min(a, hi)))
        cursor = max(cursor, b)
    if hi > cursor + tol:
        holes.append((cursor, hi))
    out: list[tuple[float, float, str]] = []
    for a, b in holes:
        # split each hole into the pieces with samples and the gaps between them
        pieces, at = [], a
        for d0, d1 in data:
            if d1 <= a or d0 >= b:
                continue
            if d0 > at + tol:
                pieces.append((at, d0, None))
            pieces.append((max(d0, a), min(d1, b), (d0, d1)))
            at = min(d1, b)
        if b > at + tol:
            pieces.append((at, b, None))
        for p0, p1, seg in pieces:
            if p1 - p0 <= tol:
                continue
            if seg is None:
                why = "data gap: no samples, so no windows"
            elif p1 - p0 > longest + tol:
                why = "no windows in the cluster table here (not computed or dropped)"
            elif abs(p0 - seg[0]) <= tol:
                where = "the record" if seg[0] - lo <= tol else "a segment after a gap"
                why = (f"first window length of {where}: features keep one sub-window of {_samples_text(scale, rate)}"
                       f" per {_samples_text(window, rate)} window (the last by default), so the first "
                       f"{_duration(p1 - p0)} have no window of their own at this scale")
            elif abs(p1 - seg[1]) <= tol:
                where = "the record" if hi - seg[1] <= tol else "a segment before a gap"
                why = f"end of {where}: shorter than one hop, no window ends here"
            else:
                why = "no windows in the cluster table here (not computed or dropped)"
            out.append((p0, p1, why))
    return out


def _union(intervals: np.ndarray) -> list[tuple[float, float]]:
    """``merge_intervals`` of an (n, 2) array, without a Python loop over the intervals (a record may have tens of
    thousands of windows)."""
    if not len(intervals):
        return []
    order = np.argsort(intervals[:, 0], kind="stable")
    a, reach = intervals[order, 0], np.maximum.accumulate(intervals[order, 1])
    first = np.flatnonzero(np.r_[True, a[1:] > reach[:-1]])
    last = np.r_[first[1:] - 1, a.size - 1]
    return list(zip(a[first].tolist(), reach[last].tolist(), strict=True))


def _samples_text(n: int, rate: float | None) -> str:
    return f"{n} samples" + (f" ({_duration(n / rate)})" if rate else "")


class NoWindowsItem(FullHeightSpans):
    """Grey hatched full-height bands over the spans without windows; hovering one shows why it has none."""

    def __init__(self, spans: list[tuple[float, float, str]]) -> None:
        super().__init__()
        self.spans = spans
        self.starts = np.array([a for a, _b, _w in spans], dtype=float)
        self.ends = np.array([b for _a, b, _w in spans], dtype=float)
        self.setZValue(-15)
        self.setAcceptHoverEvents(True)
        self.setToolTip(spans[0][2] if len(spans) == 1 else "no windows here (hover a band for why)")

    def reason_at(self, x: float) -> str | None:
        """Why the band at data x has no windows (None outside every band)."""
        for a, b, why in self.spans:
            if a <= x <= b:
                return why
        return None

    def hoverEvent(self, ev) -> None:  # noqa: N802
        if not ev.isExit():
            why = self.reason_at(float(ev.pos().x()))
            if why:
                self.setToolTip(why)

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802, N803
        return None, None  # the bands never widen the browser's x range

    def paint(self, painter: QPainter, *_args) -> None:
        y0, y1 = self._view_y()
        painter.setPen(QPen(Qt.PenStyle.NoPen))
        painter.setBrush(QColor(0, 0, 0, 18))
        for a, b, _why in self.spans:
            painter.drawRect(QRectF(a, y0, b - a, y1 - y0))
        brush = QBrush(NO_WINDOWS_COLOUR, Qt.BrushStyle.BDiagPattern)
        brush.setTransform(painter.transform().inverted()[0])  # hatch in screen pixels, not data units
        painter.setBrush(brush)
        for a, b, _why in self.spans:
            painter.drawRect(QRectF(a, y0, b - a, y1 - y0))
