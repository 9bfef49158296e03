"""Cluster occupancy over the whole table, in two layouts.

*Timeline*: one row per scale, time across, each pixel column coloured by the clusters of its windows (stacked
shares, bottom to top in cluster order). A mission table has millions of windows, so nothing is drawn per window:
each redraw bins the visible windows into the view's pixel columns (from a pyramid of counts per block of 16, 256 and
4096 windows when there are many) and draws one image. Zoomed in to less than one window per pixel, each column is
the window whose sub-window centre is nearest (the browser overlay's rule), so the colours are the table's clusters.

*Sols × LMST*: one column per sol, LMST time of day upwards, each 15-minute cell the most frequent cluster of its
windows at the panel's scale: quiet nights, windy afternoons and their drift with the season on one screen, where a
timeline of many sols only alternates day and night in every few pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from unmix.analysis.occupancy import CLUSTER_COLOURS
from unmix.gui.views.occupancy import Legend, _duration
from unmix.gui.views.time_axis import TimeAxis
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.mars_time import SECONDS_PER_SOL, lmst_to_utc, sol_float

BLOCKS = (16, 256, 4096)
"""Windows per bin of the count pyramid's levels."""
SUBROWS = 32
"""Image rows per scale: the resolution of the stacked shares."""
GAP = 0.12
"""Blank fraction at the top of each scale's row."""
HOUR_BINS = 96
"""Cells per sol of the sols × LMST layout (15 minutes)."""
LONG_TABLE = 3 * SECONDS_PER_SOL
"""Tables longer than this open in the sols × LMST layout (a timeline of them alternates day and night every few
pixels), until the user picks a layout."""
MAX_SOLS = 20000
"""More sols than this (LMST of a table that is not at Mars?) and the sols × LMST layout is left out."""


@dataclass
class ScaleRow:
    """One scale of a table in time order: window midpoints (s after ``t_ref``), where each is in the table, its
    cluster, and the count pyramid (block → (bins, K) windows of each cluster per block of consecutive windows)."""

    mid: np.ndarray
    order: np.ndarray | None  # table row of each position; None when the table is already in time order
    cluster: np.ndarray
    pyramid: dict[int, np.ndarray]

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return positions if self.order is None else self.order[positions]


@dataclass
class TimelineData:
    """What the timeline draws, computed once per table (in a worker: O(windows))."""

    t_ref: float  # POSIX s of the table's first sub-window start
    scales: tuple[int, ...]
    n_clusters: int
    span: tuple[float, float]  # s after t_ref
    rows: list[ScaleRow]
    intervals: np.ndarray  # the table's (N, S, 2) POSIX intervals (shared, not copied)
    first_sol: int = 0
    clock: list[np.ndarray] | None = None  # per scale (sols, HOUR_BINS, K) windows; None: not at Mars

    def sub_window(self, s: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (s after ``t_ref``) of the sub-windows at time-order ``positions`` of scale index ``s``."""
        iv = self.intervals[self.rows[s].rows(positions), s]
        return iv[:, 0] - self.t_ref, iv[:, 1] - self.t_ref


def timeline_data(table, progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> TimelineData:
    """Midpoints in time order and count pyramids of every scale of ``table`` (a job: seconds for a mission)."""
    iv, K = table.intervals, table.n_clusters
    if table.n_windows == 0:
        rows = [ScaleRow(np.zeros(0), None, np.zeros(0, np.int16), {}) for _ in table.scales]
        return TimelineData(0.0, table.scales, K, (0.0, 1.0), rows, iv)
    t_ref = float(iv[:, :, 0].min())
    rows = []
    for s in range(len(table.scales)):
        token.check()
        mid = (iv[:, s, 0] + iv[:, s, 1]) * 0.5 - t_ref
        order = None
        if mid.size > 1 and bool((mid[1:] < mid[:-1]).any()):
            order = np.argsort(mid, kind="stable")
            mid = mid[order]
        cluster = table.cluster[:, s] if order is None else table.cluster[order, s]
        rows.append(ScaleRow(mid, order, cluster, _pyramid(cluster, K)))
        progress((s + 1) / len(table.scales), "occupancy overview")
    span = (float(iv[:, :, 0].min()) - t_ref, float(iv[:, :, 1].max()) - t_ref)
    data = TimelineData(t_ref, table.scales, K, span, rows, iv)
    _sol_clock(data, token)
    return data


def _sol_clock(data: TimelineData, token: CancelToken) -> None:
    """Windows of each cluster per sol and 15-minute LMST bin, at every scale (midpoints in time order)."""
    lo, hi = data.span
    grid = np.linspace(lo, hi, max(2, int((hi - lo) // 3600) + 2))  # LMST is affine in UTC: exact interpolation
    sols_at = sol_float(grid + data.t_ref)
    first = int(np.floor(sols_at.min()))
    n_sols = int(np.floor(sols_at.max())) - first + 1
    if not 0 < n_sols <= MAX_SOLS:
        return
    data.first_sol, data.clock, K = first, [], data.n_clusters
    for row in data.rows:
        token.check()
        sol = np.interp(row.mid, grid, sols_at) - first
        cell = np.clip((sol * HOUR_BINS).astype(np.int64), 0, n_sols * HOUR_BINS - 1)
        counts = np.bincount(cell * K + row.cluster, minlength=n_sols * HOUR_BINS * K)
        data.clock.append(counts.reshape(n_sols, HOUR_BINS, K).astype(np.int32))


def clock_image(counts: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(HOUR_BINS, sols, 4) RGBA image (row 0: LMST midnight) of the most frequent cluster of each cell of
    ``counts`` (sols, HOUR_BINS, K); transparent where a cell has no window."""
    K = lut.shape[0] - 1
    index = np.where(counts.sum(axis=2) > 0, counts.argmax(axis=2), K).T
    return np.take(lut.view(np.uint32).ravel(), index).view(np.uint8).reshape(*index.shape, 4)


def _pyramid(cluster: np.ndarray, K: int) -> dict[int, np.ndarray]:
    """Windows of each cluster per block of ``BLOCKS[i]`` consecutive windows (the last block may be partial)."""
    n = cluster.size
    out: dict[int, np.ndarray] = {}
    first = BLOCKS[0]
    nb = -(-n // first)
    codes = (np.arange(n, dtype=np.int64) // first) * K + cluster.astype(np.int64)
    counts = np.bincount(codes, minlength=nb * K).reshape(nb, K).astype(np.int32)
    out[first] = counts
    for prev, block in zip(BLOCKS, BLOCKS[1:], strict=False):
        f = block // prev
        pad = (-counts.shape[0]) % f
        counts = np.concatenate([counts, np.zeros((pad, K), np.int32)]).reshape(-1, f, K).sum(axis=1, dtype=np.int32)
        out[block] = counts
    return out


def columns(data: TimelineData, s: int, x0: float, x1: float, width: int) -> np.ndarray:
    """(width, K) windows of each cluster in each pixel column of ``[x0, x1]`` (s after ``t_ref``) at scale index
    ``s``. With fewer windows than columns each column holds the one window whose centre is nearest to the column's
    centre (when its sub-window reaches there), else the windows whose midpoints fall in it."""
    row, K = data.rows[s], data.n_clusters
    out = np.zeros((width, K), np.float32)
    n = row.mid.size
    if n == 0 or width <= 0 or not x1 > x0:
        return out
    i0, i1 = np.searchsorted(row.mid, [x0, x1], side="left")
    visible = int(i1 - i0)
    if visible <= width:
        centre = x0 + (np.arange(width) + 0.5) * ((x1 - x0) / width)
        j = np.searchsorted(row.mid, centre)
        left, right = np.clip(j - 1, 0, n - 1), np.clip(j, 0, n - 1)
        pick = np.where(np.abs(row.mid[left] - centre) <= np.abs(row.mid[right] - centre), left, right)
        a, b = data.sub_window(s, pick)
        inside = (a <= centre) & (centre < b)
        out[np.flatnonzero(inside), row.cluster[pick[inside]].astype(np.int64)] = 1.0
        return out
    scale = width / (x1 - x0)
    block = max((b for b in BLOCKS if visible / b >= 2 * width), default=1)
    if block == 1:
        px = np.clip(((row.mid[i0:i1] - x0) * scale).astype(np.int64), 0, width - 1)
        codes = px * K + row.cluster[i0:i1].astype(np.int64)
        return np.bincount(codes, minlength=width * K).reshape(width, K).astype(np.float32)
    j0, j1 = i0 // block, -(-i1 // block)
    centre = row.mid[np.minimum(np.arange(j0, j1) * block + block // 2, n - 1)]
    keep = (centre >= x0) & (centre < x1)
    px = np.clip(((centre[keep] - x0) * scale).astype(np.int64), 0, width - 1)
    counts = row.pyramid[block][j0:j1][keep]
    if px.size:
        firsts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
        out[px[firsts]] = np.add.reduceat(counts, firsts, axis=0)
    return out


def colour_table(K: int) -> np.ndarray:
    """(K + 1, 4) RGBA of each cluster; the last row (transparent) is 'no window'."""
    lut = np.zeros((K + 1, 4), np.uint8)
    for k in range(K):
        c = QColor(CLUSTER_COLOURS[k % len(CLUSTER_COLOURS)])
        lut[k] = (c.red(), c.green(), c.blue(), 255)
    return lut


def shares_image(cols: list[np.ndarray], lut: np.ndarray, subrows: int = SUBROWS) -> np.ndarray:
    """(S * subrows, width, 4) RGBA image, row 0 at the bottom: per scale (the first on top), each column's
    clusters stacked by share; an empty column is transparent; the top ``GAP`` of each scale's rows is blank."""
    K = lut.shape[0] - 1
    filled = max(1, int(round(subrows * (1 - GAP))))
    parts = []
    for c in reversed(cols):  # bottom of the image first: the last scale
        width = c.shape[0]
        total = c.sum(axis=1, dtype=np.float64)
        cum = np.cumsum(c, axis=1, dtype=np.float64) / np.maximum(total, 1e-300)[:, None]
        # cluster k fills the sub-rows whose centres lie between the cumulative shares of clusters k-1 and k
        bounds = np.clip(np.ceil(cum * filled - 0.5), 0, filled).astype(np.int64)
        bounds[:, -1] = filled
        reps = np.diff(bounds, axis=1, prepend=0)
        idx = np.repeat(np.tile(np.arange(K), width), reps.ravel()).reshape(width, filled)
        idx[total == 0] = K  # no window: transparent
        block = np.full((subrows, width), K, np.int64)
        block[:filled] = idx.T
        parts.append(block)
    if not parts:
        return np.zeros((0, 0, 4), np.uint8)
    index = np.concatenate(parts)
    return np.take(lut.view(np.uint32).ravel(), index).view(np.uint8).reshape(*index.shape, 4)


class OccupancyTimeline(QWidget):
    """The table's clusters over time: a timeline (one row per scale; pans and zooms in time) or sols × LMST (one
    scale). A double click emits ``time_clicked(posix)`` (the owner shows that time in the browser)."""

    time_clicked = Signal(float)
    LAYOUTS = (("timeline", "Timeline, every scale"), ("clock", "Sols × LMST, this scale"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data: TimelineData | None = None
        self.label_of: Callable[[int], str] = str
        self.scale_index = 0
        self.status = QLabel("No clusters yet: run Cluster (or open a cluster table)")
        self.status.setWordWrap(True)
        self.layout_combo = QComboBox()
        for key, text in self.LAYOUTS:
            self.layout_combo.addItem(text, key)
        self.layout_combo.setToolTip("Timeline: time across, a row per scale. Sols × LMST: a column per sol, the time"
                                     " of day upwards, at the scale chosen above")
        self.layout_combo.currentIndexChanged.connect(self._layout_changed)
        self.layout_combo.activated.connect(lambda _i: setattr(self, "layout_chosen", True))
        self.layout_chosen = False  # until the user picks one, long tables open in sols × LMST
        self.legend = Legend()
        self.axis = TimeAxis("bottom")
        self.plot = _plot({"bottom": self.axis})
        self.vb = self.plot.getViewBox()
        self.vb.setMouseEnabled(x=True, y=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.clock_plot = _plot({})
        self.clock_plot.setLabel("bottom", "sol")
        self.clock_plot.setLabel("left", "LMST hour")
        self.clock_plot.getAxis("left").setTicks([[(h, f"{h:02d}") for h in range(0, 25, 3)], []])
        self.clock_image = pg.ImageItem(axisOrder="row-major")
        self.clock_plot.addItem(self.clock_image)
        self.lut = colour_table(1)
        self.vb.sigXRangeChanged.connect(lambda *_: self.redraw())
        self.vb.sigResized.connect(lambda *_: self.redraw())
        for plot in (self.plot, self.clock_plot):
            plot.scene().sigMouseClicked.connect(lambda event, p=plot: self._clicked(p, event))
        self.stack = QStackedWidget()
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.clock_plot)
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 0)
        header.addWidget(self.layout_combo)
        header.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.legend)
        layout.addWidget(self.stack, 1)

    def layout_key(self) -> str:
        return str(self.layout_combo.currentData())

    def set_layout(self, key: str) -> None:
        """``'timeline'`` or ``'clock'`` (sols × LMST; the timeline when the table's times are not at Mars)."""
        index = self.layout_combo.findData(key)
        if index >= 0:
            self.layout_combo.setCurrentIndex(index)

    def set_data(self, data: TimelineData | None, label_of: Callable[[int], str] = str,
                 counts: np.ndarray | None = None, scale_text: str = "", scale: int | None = None) -> None:
        """Show ``data`` (None clears); the legend gives each cluster's ``counts`` at the panel's ``scale``."""
        self.data, self.label_of = data, label_of
        if data is None or not data.rows or data.rows[0].mid.size == 0:
            self.data = None
            self.image.clear()
            self.clock_image.clear()
            self.legend.set_counts([], note="")
            self.status.setText("No clusters yet" if data is None else "The cluster table has no windows")
            return
        self.lut = colour_table(data.n_clusters)
        self.axis.set_reference(data.t_ref)
        S = len(data.scales)
        left = self.plot.getAxis("left")
        left.setTicks([[(S - s - 0.5, f"{scale}") for s, scale in enumerate(data.scales)], []])
        left.setLabel("scale (samples)")
        lo, hi = data.span
        pad = 0.01 * (hi - lo)
        self.vb.setLimits(xMin=lo - pad, xMax=hi + pad, yMin=0, yMax=S, minXRange=1.0)
        self.vb.setYRange(0, S, padding=0)
        if data.clock is not None:
            n_sols = data.clock[0].shape[0]
            self.clock_plot.getViewBox().setLimits(xMin=data.first_sol - 1, xMax=data.first_sol + n_sols + 1,
                                                   yMin=0, yMax=24)
            self.clock_plot.setRange(xRange=(data.first_sol, data.first_sol + n_sols), yRange=(0, 24), padding=0)
        self.scale_index = data.scales.index(scale) if scale in data.scales else 0
        if not self.layout_chosen:
            self.set_layout("clock" if data.clock is not None and hi - lo > LONG_TABLE else "timeline")
        self.set_counts(counts if counts is not None else np.zeros(data.n_clusters), label_of, scale_text)
        self.vb.setXRange(lo, hi, padding=0)
        self.redraw()
        self._draw_clock()

    def set_counts(self, counts: np.ndarray, label_of: Callable[[int], str] = str, scale_text: str = "",
                   scale: int | None = None) -> None:
        """Legend chips: each cluster's windows at the panel's ``scale`` (the scale the sols × LMST layout shows)."""
        self.label_of = label_of
        self.legend.set_counts(counts, label_of)
        if self.data is not None and scale in self.data.scales:
            self.scale_index = self.data.scales.index(scale)
            self._draw_clock()
        self._status(scale_text)

    def _status(self, scale_text: str = "") -> None:
        if self.data is None:
            return
        lo, hi = self.data.span
        length = f"{(hi - lo) / SECONDS_PER_SOL:.1f} sols" if hi - lo > 2 * SECONDS_PER_SOL else _duration(hi - lo)
        if self.layout_key() == "clock" and self.data.clock is not None:
            text = (f"{length}: each cell the most frequent cluster of its windows in 15 min of LMST at scale "
                    f"{self.data.scales[self.scale_index]}")
        else:
            text = f"{length}: each column the windows there, stacked by cluster; zoom in for single windows"
        self.status.setText(f"{text}. Legend: windows per cluster{scale_text}. Double-click: show it in the browser")

    def set_axis_mode(self, mode: str) -> None:
        self.axis.set_mode(mode)
        self.axis.setLabel(self.axis.describe(self.x_range()[0]))

    def x_range(self) -> tuple[float, float]:
        x0, x1 = self.vb.viewRange()[0]
        return float(x0), float(x1)

    def set_x_range(self, x0: float, x1: float) -> None:
        self.vb.setXRange(x0, x1, padding=0)

    def width_px(self) -> int:
        return max(int(round(self.vb.width())), 1)

    def column_counts(self) -> list[np.ndarray]:
        """Per scale, the (columns, K) windows of each cluster of the view as drawn."""
        if self.data is None:
            return []
        x0, x1 = self.x_range()
        return [columns(self.data, s, x0, x1, self.width_px()) for s in range(len(self.data.scales))]

    def redraw(self) -> None:
        """Bin the visible windows into the view's pixel columns and show them as one image."""
        if self.data is None:
            return
        x0, x1 = self.x_range()
        self.image.setImage(shares_image(self.column_counts(), self.lut), autoLevels=False)
        self.image.setRect(QRectF(x0, 0.0, x1 - x0, float(len(self.data.scales))))
        self.axis.setLabel(self.axis.describe(x0))

    def _draw_clock(self) -> None:
        data = self.data
        if data is None or data.clock is None:
            self.clock_image.clear()
            return
        counts = data.clock[min(self.scale_index, len(data.clock) - 1)]
        self.clock_image.setImage(clock_image(counts, self.lut), autoLevels=False)
        self.clock_image.setRect(QRectF(data.first_sol, 0.0, counts.shape[0], 24.0))

    def _layout_changed(self, _index: int) -> None:
        self.stack.setCurrentIndex(1 if self.layout_key() == "clock" else 0)
        self._status()

    def _clicked(self, plot: pg.PlotWidget, event) -> None:
        if self.data is None or not event.double():
            return
        pos = plot.getViewBox().mapSceneToView(event.scenePos())
        if plot is self.plot:
            self.time_clicked.emit(self.data.t_ref + float(pos.x()))
        elif 0 <= pos.y() <= 24:
            self.time_clicked.emit(lmst_to_utc(int(np.floor(pos.x())), float(pos.y())).timestamp)


def _plot(axes: dict) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w", axisItems=axes)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.getAxis("left").setWidth(72)
    for side in ("left", "bottom"):
        plot.getAxis(side).enableAutoSIPrefix(False)
    return plot
