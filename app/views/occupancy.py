"""Cluster occupancy on the waveform browser: coloured spans behind the traces, a scale chooser and a legend."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPicture
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QWidget

from unmix.analysis.occupancy import CLUSTER_COLOURS, occupancy_runs


def cluster_colour(k: int, alpha: int = 255) -> QColor:
    colour = QColor(CLUSTER_COLOURS[int(k) % len(CLUSTER_COLOURS)])
    colour.setAlpha(alpha)
    return colour


class SpanItem(pg.GraphicsObject):
    """Coloured full-height spans ``[start, end)`` in data x; the height follows the view so it never autoranges y."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, clusters: np.ndarray, alpha: int = 60) -> None:
        super().__init__()
        self.starts, self.ends, self.clusters = np.asarray(starts), np.asarray(ends), np.asarray(clusters)
        self.alpha = alpha
        self.setZValue(-20)
        self._picture: QPicture | None = None
        self._y: tuple = ()

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
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def paint(self, painter: QPainter, *_args) -> None:
        vb = self.getViewBox()
        (x0, x1), _ = vb.viewRange() if vb is not None else ((-np.inf, np.inf), None)
        y = self._view_y()
        key = (y, x0, x1)
        if self._picture is None or key != self._y:
            self._y = key
            self._picture = QPicture()
            p = QPainter(self._picture)
            p.setPen(Qt.PenStyle.NoPen)
            # only the runs in view: long records have tens of thousands of them
            i0 = int(np.searchsorted(self.ends, x0, side="left"))
            i1 = int(np.searchsorted(self.starts, x1, side="right"))
            starts, ends, clusters = self.starts[i0:i1], self.ends[i0:i1], self.clusters[i0:i1]
            for k in np.unique(clusters):
                p.setBrush(cluster_colour(int(k), self.alpha))
                sel = clusters == k
                for a, b in zip(starts[sel], ends[sel], strict=True):
                    p.drawRect(QRectF(float(a), y[0], float(b - a), y[1] - y[0]))
            p.end()
        self._picture.play(painter)


class Legend(QWidget):
    """Colour chips with each cluster's number of windows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(8)
        self.labels: list[QLabel] = []

    def set_counts(self, counts: np.ndarray | list[int], label_of: Callable[[int], str] = str) -> None:
        """One chip per cluster: ``label_of(k)`` (the table's ``label``: number and name) and its windows."""
        for label in self.labels:
            self.row.removeWidget(label)
            label.deleteLater()
        self.labels = []
        for k, n in enumerate(counts):
            text = html.escape(label_of(k))
            label = QLabel(f"<span style='color:{CLUSTER_COLOURS[k % len(CLUSTER_COLOURS)]}'>■</span> {text}: {int(n)}")
            label.setToolTip(f"cluster {text}: {int(n)} windows at this scale")
            self.row.addWidget(label)
            self.labels.append(label)


class OccupancyBar(QWidget):
    """Toggle, scale chooser and legend for the cluster spans; emits ``changed(visible, scale)``."""

    changed = Signal(bool, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QCheckBox("Clusters")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Colour each window by its cluster at the chosen scale")
        self.scale_combo = QComboBox()
        self.scale_combo.setToolTip("Scale of the clustering shown")
        self.legend = Legend()
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.toggle)
        row.addWidget(QLabel("scale"))
        row.addWidget(self.scale_combo)
        row.addSpacing(8)
        row.addWidget(self.legend)
        row.addStretch(1)
        for w in (self.toggle, self.scale_combo):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.toggle.toggled.connect(self._emit)
        self.scale_combo.currentIndexChanged.connect(self._emit)

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
        bar.changed.connect(self._changed)

    def set_table(self, table) -> None:
        """Show ``table`` (None: remove the overlay); keeps the chosen scale when the new table has it."""
        self.table = table
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

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs of the current scale in the browser's relative seconds (only windows of the shown record)."""
        display, table = self.waveform.display, self.table
        s = table.scale_index(self.scale)
        wanted = np.ones(table.n_windows, dtype=bool)
        keys = window_keys(table)
        if keys is not None and display is not None:
            base = display.key.split("#")[0]
            if np.any(keys == base):
                wanted = keys == base
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
        scale = self.scale
        self.bar.legend.set_counts(table.occupancy(scale), lambda k: table.label(scale, k))
        if not self.visible or self.waveform.display is None or not self.waveform.plots:
            return
        starts, ends, k = self.runs()
        for plot in self.waveform.plots:
            item = SpanItem(starts, ends, k)
            plot.addItem(item, ignoreBounds=True)
            self.items.append((plot, item))


def window_keys(table) -> np.ndarray | None:
    """Record key of every window, from the table's inputs (None when the table does not say)."""
    if table.input_index is None or table.record_index is None or not table.inputs:
        return None
    try:
        names = [[r.get("key", "") for r in inp.get("records", [])] for inp in table.inputs]
        return np.array([names[i][j] for i, j in zip(table.input_index, table.record_index, strict=True)])
    except (IndexError, KeyError, TypeError):
        return None
