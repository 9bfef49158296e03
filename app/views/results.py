"""Result views: LMST time-of-day histograms, latent-space scatter, aligned waveforms per cluster, separation.

They draw data computed elsewhere (``unmix.gui.tasks.ClusterProducts``, ``unmix.separation.SeparationResult``) and
compute nothing but what drawing needs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from unmix.analysis.occupancy import CLUSTER_COLOURS
from unmix.errors import InputFileError, UnmixError
from unmix.gui.views.occupancy import cluster_colour
from unmix.gui.views.time_axis import TimeAxis
from unmix.gui.views.timeline import OccupancyTimeline

if TYPE_CHECKING:
    from obspy import Stream, Trace

MAX_DRAWN_MEMBERS = 40
ROW_HEIGHT = 170


def _colour(k: int) -> str:
    return CLUSTER_COLOURS[int(k) % len(CLUSTER_COLOURS)]


def _grid(n: int) -> int:
    """Columns of a small-multiples grid of ``n`` panels."""
    return max(1, min(n, math.ceil(math.sqrt(n * 1.6))))


def _scrolling(graphics: pg.GraphicsLayoutWidget) -> QScrollArea:
    """Small multiples keep a readable height: the grid scrolls instead of shrinking."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(graphics)
    return area


def _set_rows(graphics: pg.GraphicsLayoutWidget, rows: int) -> None:
    graphics.setMinimumHeight(max(rows, 1) * ROW_HEIGHT)


def _axis_titles(plot: pg.PlotItem, i: int, n: int, cols: int, x_title: str, y_title: str) -> None:
    """Axis titles on the small multiples' outer edges: x under the last row's plots, y left of the first column."""
    style = {"font-size": "8pt"}
    if i + cols >= n:
        plot.setLabel("bottom", x_title, **style)
    if i % cols == 0:
        plot.setLabel("left", y_title, **style)


def _label(view: QWidget, k: int) -> str:
    """Cluster ``k`` as the view's ``label_of`` (set by :meth:`ResultsPanel.set_products`) gives it: number and name."""
    return html.escape(getattr(view, "label_of", str)(int(k)))


def detrended(y: np.ndarray) -> np.ndarray:
    """``y`` (..., T) less its least-squares line along the last axis, fitted on the finite samples (aligned windows
    are NaN where a member does not reach): at coarse scales the drift of a long window would otherwise dominate what
    is drawn. NaN stays NaN; a constant series becomes zeros."""
    y = np.asarray(y, dtype=np.float64)
    t = np.arange(y.shape[-1], dtype=np.float64)
    ok = np.isfinite(y)
    n = ok.sum(axis=-1, keepdims=True)
    safe = np.where(ok, y, 0.0)
    tm = np.where(ok, t, 0.0).sum(axis=-1, keepdims=True) / np.maximum(n, 1)
    ym = safe.sum(axis=-1, keepdims=True) / np.maximum(n, 1)
    dt = np.where(ok, t - tm, 0.0)
    slope = (dt * (safe - ym)).sum(axis=-1, keepdims=True) / np.maximum((dt * dt).sum(axis=-1, keepdims=True), 1e-300)
    return np.where(ok, y - ym - slope * (t - tm), np.nan)


class _Header(QWidget):
    """A row of controls; the last one, when a label (the view's status), takes the rest and wraps."""

    def __init__(self, *widgets: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for w in widgets[:-1]:
            row.addWidget(w)
        last = widgets[-1]
        if isinstance(last, QLabel):
            last.setWordWrap(True)
            last.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            row.addWidget(last, 1)
        else:
            row.addWidget(last)
            row.addStretch(1)


class HistogramView(QWidget):
    """One small bar chart per cluster: share of its windows in each LMST hour of the sol."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("No clusters yet: run Cluster (or open a project with a cluster table)")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plots: list[pg.PlotItem] = []
        self.bars: list[pg.BarGraphItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(_Header(self.status))
        layout.addWidget(_scrolling(self.graphics), 1)

    def set_data(self, edges: np.ndarray | None, counts: np.ndarray | None, scale_text: str = "") -> None:
        """``edges`` (B+1,) in LMST hours, ``counts`` (K, B) windows per cluster and bin; None clears."""
        self.graphics.clear()
        self.plots, self.bars = [], []
        if edges is None or counts is None:
            self.status.setText("No clusters yet")
            return
        counts = np.asarray(counts, dtype=float)
        edges = np.asarray(edges, dtype=float)
        centres, widths = (edges[1:] + edges[:-1]) / 2, np.diff(edges)
        shown = [k for k in range(counts.shape[0]) if counts[k].sum() > 0]
        empty = [k for k in range(counts.shape[0]) if counts[k].sum() == 0]
        cols = _grid(len(shown))
        _set_rows(self.graphics, -(-len(shown) // cols))
        top = 0.0
        for i, k in enumerate(shown):
            total = counts[k].sum()
            share = 100.0 * counts[k] / total
            top = max(top, float(share.max()))
            plot = self.graphics.addPlot(row=i // cols, col=i % cols, enableMenu=False)  # no menu: 16 plots open faster
            plot.setTitle(f"<span style='color:{_colour(k)}'>cluster {_label(self, k)}</span> ({int(total)} windows)",
                          size="9pt")
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
            bars = pg.BarGraphItem(x=centres, height=share, width=widths * 0.9, brush=cluster_colour(k, 200),
                                   pen=pg.mkPen(None))
            plot.addItem(bars)
            plot.setXRange(float(edges[0]), float(edges[-1]), padding=0.04)
            bottom = plot.getAxis("bottom")
            bottom.setTicks([[(h, f"{h:02d}") for h in range(0, 25, 3)]])
            bottom.setStyle(hideOverlappingLabels=False)  # keep 00 and 24 at the ends of the sol
            plot.getAxis("left").setWidth(44)
            _axis_titles(plot, i, len(shown), cols, "LMST hour", "% of windows")
            plot.showGrid(x=True, y=True, alpha=0.15)
            self.plots.append(plot)
            self.bars.append(bars)
        for plot in self.plots:
            plot.setYRange(0, max(top, 1e-9) * 1.05, padding=0)
        note = f"; empty: {', '.join(map(str, empty))}" if empty else ""
        self.status.setText(f"LMST hour of each cluster's windows{scale_text} (% of the cluster){note}")


class LatentView(QWidget):
    """2-D embedding of the latent means, coloured by cluster; clicking a point emits ``window_clicked(index)``."""

    window_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("No latent space yet")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(False)
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextSize="8pt", brush=(255, 255, 255, 210),
                                          pen=pg.mkPen((180, 180, 180)))
        for side in ("left", "bottom"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.scatters: list[pg.ScatterPlotItem] = []
        self.marker = pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=2), brush=pg.mkBrush(None), symbol="o")
        self.marker.setZValue(10)
        self.plot.addItem(self.marker)
        self.selected: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(_Header(self.status))
        layout.addWidget(self.plot, 1)

    def set_data(self, xy: np.ndarray | None, clusters: np.ndarray | None = None, windows: np.ndarray | None = None,
                 method: str = "", scale_text: str = "") -> None:
        """Points ``xy`` (N, 2) of windows ``windows`` (table row numbers) in clusters ``clusters``."""
        for s in self.scatters:
            self.plot.removeItem(s)
        self.scatters = []
        self.legend.clear()
        self.marker.clear()
        self.selected = None
        if xy is None or len(xy) == 0:
            self.status.setText("No latent space yet")
            return
        xy = np.asarray(xy, dtype=float)
        clusters = np.asarray(clusters).astype(int)
        windows = np.arange(len(xy)) if windows is None else np.asarray(windows).astype(int)
        for k in np.unique(clusters):
            sel = clusters == k
            scatter = pg.ScatterPlotItem(x=xy[sel, 0], y=xy[sel, 1], data=windows[sel], size=7,
                                         pen=pg.mkPen(None), brush=cluster_colour(int(k), 190), hoverable=True,
                                         tip=lambda x, y, data: f"window {data}")
            scatter.sigClicked.connect(self._clicked)
            self.plot.addItem(scatter)
            self.legend.addItem(scatter, f"cluster {_label(self, int(k))} ({int(sel.sum())})")
            self.scatters.append(scatter)
        self.plot.setLabel("bottom", f"{method} 1" if method else "dimension 1")
        self.plot.setLabel("left", f"{method} 2" if method else "dimension 2")
        self.plot.autoRange()
        self.status.setText(f"Latent means{scale_text}, {method or '2-D'} embedding: click a point to show its window")

    def point_of(self, window: int) -> tuple[float, float] | None:
        for scatter in self.scatters:
            data = scatter.data["data"]
            hit = np.flatnonzero(data == window)
            if hit.size:
                return float(scatter.data["x"][hit[0]]), float(scatter.data["y"][hit[0]])
        return None

    def select(self, window: int) -> None:
        """Mark ``window`` and emit ``window_clicked`` (what a click does)."""
        self.selected = int(window)
        point = self.point_of(window)
        self.marker.setData([point[0]], [point[1]]) if point else self.marker.clear()
        self.window_clicked.emit(int(window))

    def _clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.select(int(points[0].data()))


class AlignedView(QWidget):
    """Per cluster: its most confident windows aligned by cross-correlation (thin) and their centroid (thick)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("No aligned waveforms yet")
        self.component_combo = QComboBox()
        self.component_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.show_combo = QComboBox()
        self.show_combo.addItem("waveforms", "waveforms")
        self.show_combo.addItem("centroid spectrum", "spectrum")
        self.show_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plots: list[pg.PlotItem] = []
        self.aligned: dict = {}
        self.components: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(_Header(QLabel("Component"), self.component_combo, self.show_combo, self.status))
        layout.addWidget(_scrolling(self.graphics), 1)

    def set_data(self, aligned: dict | None, components: list[str] | None = None, scale_text: str = "") -> None:
        """``aligned``: cluster → object with ``times`` (T,), ``waveforms`` (M, C, T), ``centroid`` (C, T)."""
        self.aligned = aligned or {}
        self.components = list(components or [])
        self.component_combo.blockSignals(True)
        current = self.component_combo.currentText()
        self.component_combo.clear()
        self.component_combo.addItems(self.components)
        if current in self.components:
            self.component_combo.setCurrentText(current)
        self.component_combo.blockSignals(False)
        self._scale_text = scale_text
        self._draw()

    def _draw(self) -> None:
        self.graphics.clear()
        self.plots = []
        if not self.aligned:
            self.status.setText("No aligned waveforms yet")
            return
        c = max(self.component_combo.currentIndex(), 0)
        if self.show_combo.currentData() == "spectrum":
            self._draw_spectra(c)
            return
        keys = sorted(self.aligned)
        cols = _grid(len(keys))
        _set_rows(self.graphics, -(-len(keys) // cols))
        for i, k in enumerate(keys):
            a = self.aligned[k]
            plot = self.graphics.addPlot(row=i // cols, col=i % cols)
            n = 0 if a.waveforms is None else len(a.waveforms)
            plot.setTitle(f"<span style='color:{_colour(k)}'>cluster {_label(self, k)}</span> ({n} aligned)",
                          size="9pt")
            plot.setMenuEnabled(False)
            plot.hideButtons()
            curves = []
            if n:
                members = detrended(a.waveforms[:MAX_DRAWN_MEMBERS, c])
                for w in members:
                    curves.append(plot.plot(a.times, w, pen=pg.mkPen((120, 120, 120, 70), width=1)))
            if a.centroid is not None:
                curves.append(plot.plot(a.times, detrended(a.centroid[c]), pen=pg.mkPen(_colour(k), width=2.5)))
            for curve in curves:  # coarse scales are 65536 samples long
                curve.setDownsampling(auto=True, method="peak")
                curve.setClipToView(True)
            plot.getAxis("left").setWidth(44)
            _axis_titles(plot, i, len(keys), cols, "time (s)", "amplitude (std.)")
            self.plots.append(plot)
        comp = self.components[c] if c < len(self.components) else ""
        self.status.setText(f"  standardised, aligned windows (grey) and centroid (colour), linear trend removed, "
                            f"component {comp}{self._scale_text}")


    def _draw_spectra(self, c: int) -> None:
        """One log-log plot: the amplitude spectrum of every cluster's centroid."""
        _set_rows(self.graphics, 2)
        plot = self.graphics.addPlot(row=0, col=0)
        plot.setLogMode(x=True, y=True)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "frequency (Hz)")
        plot.setLabel("left", "amplitude (standardised)")

        legend = plot.addLegend(offset=(-10, 10), labelTextSize="8pt", brush=(255, 255, 255, 210))
        lo, hi = np.inf, 0.0
        for k in sorted(self.aligned):
            a = self.aligned[k]
            if a.freqs is None or a.spectrum is None:
                continue
            ok = (a.freqs > 0) & np.isfinite(a.spectrum[c]) & (a.spectrum[c] > 0)
            curve = plot.plot(a.freqs[ok], a.spectrum[c][ok], pen=pg.mkPen(_colour(k), width=2))
            legend.addItem(curve, f"cluster {_label(self, k)}")
            lo, hi = (min(lo, a.freqs[ok].min()), max(hi, a.freqs[ok].max())) if ok.any() else (lo, hi)
        if hi > lo > 0:
            plot.getAxis("bottom").setTicks(_log_ticks(lo, hi))
        self.plots = [plot]
        comp = self.components[c] if c < len(self.components) else ""
        self.status.setText(f"  amplitude spectrum of each cluster's centroid, component {comp}{self._scale_text}")


SEPARATION_ROW_HEIGHT = 105
"""Minimum height (px) of each separation row: docked, the rows scroll instead of shrinking to a few pixels."""


class SeparationView(QWidget):
    """Per component, the original and the background on one row and the removed part on the row below (so that
    neither hides the other), on the browser's time origin; each layer has a toggle.

    ``range_changed(x0, x1)`` is emitted when the user pans or zooms the rows; the owner links it to the browser.
    """

    export_requested = Signal()
    range_changed = Signal(float, float)
    message = Signal(str)  # one line for the log: a reference loaded, or why it was not

    LAYERS = (("original", "Original", "#8c8c8c"), ("background", "Background", "#1f4e99"),
              ("removed", "Removed", "#c0392b"))
    REFERENCE_COLOUR = "#e08a00"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("No separation yet: run Separate")
        self.toggles: dict[str, QCheckBox] = {}
        widgets: list[QWidget] = []
        for key, text, colour in self.LAYERS:
            box = QCheckBox(text)
            box.setChecked(True)
            shown = "#5a5a5a" if key == "original" else colour
            box.setStyleSheet(f"QCheckBox {{ color: {shown}; font-weight: bold; }}")
            box.setToolTip(f"{text}: drawn in {'its own row' if key == 'removed' else 'the upper row'}, this colour")
            box.toggled.connect(self._visibility)
            self.toggles[key] = box
            widgets.append(box)
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_requested)
        self.reference_button = QPushButton("Reference…")
        self.reference_button.setToolTip("draw a reference waveform file (an expert deglitching, a synthetic truth) "
                                         "over the background of the matching channels")
        self.reference_button.clicked.connect(self.choose_reference)
        self.clear_reference_button = QPushButton("Clear reference")
        self.clear_reference_button.setEnabled(False)
        self.clear_reference_button.clicked.connect(self.clear_reference)
        self.reference_info = QLabel("")
        self.reference_info.setStyleSheet(f"color: {self.REFERENCE_COLOUR};")
        self.reference_info.setWordWrap(True)
        self.reference_info.hide()
        self.reference: Stream | None = None
        self.reference_path: str | None = None
        self.reference_curves: dict[str, list[pg.PlotDataItem]] = {}
        self.legends: list[pg.LegendItem] = []  # one per row with a reference, in its view box
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.graphics.ci.setSpacing(0)
        self.plots: list[pg.PlotItem] = []
        self.removed_plots: list[pg.PlotItem] = []
        self.curves: dict[str, list[pg.PlotDataItem]] = {}
        self.offsets: dict[str, float] = {}
        self.result = None
        self.t_ref = 0.0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(_Header(*widgets, self.reference_button, self.clear_reference_button, self.export_button,
                                 self.status))
        layout.addWidget(self.reference_info)
        layout.addWidget(_scrolling(self.graphics), 1)

    def all_plots(self) -> list[pg.PlotItem]:
        """Every row, top to bottom."""
        return [p for pair in zip(self.plots, self.removed_plots, strict=True) for p in pair]

    def set_result(self, original, result, axis_mode: str = "utc", target: str = "",
                   t_ref: float | None = None) -> None:
        """Draw ``original`` (Stream), ``result.background`` and the sum of ``result.removed`` (None clears).

        ``t_ref`` is the browser's time origin (POSIX s) so that both show one x for one time; by default the
        separation's first sample.
        """
        self.graphics.clear()
        self.plots, self.removed_plots = [], []
        self.curves = {key: [] for key, _t, _c in self.LAYERS}
        self.reference_curves, self.legends = {}, []
        self.offsets = {}
        self.result = result
        self.export_button.setEnabled(result is not None)
        if result is None:
            self.status.setText("No separation yet")
            self.reference_info.hide()
            return
        background = result.background
        self.t_ref = min(tr.stats.starttime.timestamp for tr in background) if t_ref is None else float(t_ref)
        first = None
        ids = [tr.id for tr in background]
        for i, trace_id in enumerate(ids):
            layers = {"original": _select(original, trace_id), "background": _select(background, trace_id),
                      "removed": _sum_removed(result.removed, trace_id)}
            unit = _unit(layers["background"] or layers["original"])
            comp = trace_id.split(".")[-1]
            self.offsets[trace_id] = 0.0  # drawn in the record's own values: nothing is shifted
            for part, keys in (("upper", ("original", "background")), ("removed", ("removed",))):
                axis = TimeAxis("bottom")
                axis.set_reference(self.t_ref)
                axis.set_mode(axis_mode)
                plot = self.graphics.addPlot(row=len(self.plots) + len(self.removed_plots), col=0,
                                             axisItems={"bottom": axis})
                name = "removed" if part == "removed" else comp
                plot.setLabel("left", f"{name} [{unit}]", **{"font-size": "8pt"})
                plot.getAxis("left").setWidth(72)
                plot.getAxis("left").enableAutoSIPrefix(False)
                plot.setMenuEnabled(False)
                plot.hideButtons()
                plot.showGrid(x=True, y=False, alpha=0.15)
                plot.getViewBox().setMouseEnabled(x=True, y=False)
                for key in keys:
                    colour = dict((k, c) for k, _t, c in self.LAYERS)[key]
                    for tr in layers[key]:
                        x = tr.stats.starttime.timestamp - self.t_ref + np.arange(tr.stats.npts) * tr.stats.delta
                        curve = plot.plot(x, np.asarray(tr.data, dtype=np.float64), pen=pg.mkPen(colour, width=1))
                        curve.setDownsampling(auto=True, method="peak")
                        curve.setClipToView(True)
                        curve.setVisible(self.toggles[key].isChecked())
                        self.curves[key].append(curve)
                if first is None:
                    first = plot
                else:
                    plot.setXLink(first)
                last = i == len(ids) - 1 and part == "removed"
                if not last:
                    plot.getAxis("bottom").setStyle(showValues=False)
                    plot.getAxis("bottom").setPen(pg.mkPen("#b0b0b0"))
                (self.removed_plots if part == "removed" else self.plots).append(plot)
        self.graphics.setMinimumHeight(len(self.all_plots()) * SEPARATION_ROW_HEIGHT + 30)
        if first is not None:
            first.getViewBox().sigXRangeChanged.connect(self._range_changed)
        self._caption()
        self.status.setText(f"  {_separation_summary(result, target)}")
        if self.reference is not None:
            self._draw_reference()

    def x_range(self) -> tuple[float, float]:
        if not self.plots:
            return 0.0, 1.0
        x0, x1 = self.plots[0].getViewBox().viewRange()[0]
        return float(x0), float(x1)

    def set_x_range(self, x0: float, x1: float) -> None:
        if self.plots:
            self.plots[0].setXRange(x0, x1, padding=0)

    def set_axis_mode(self, mode: str) -> None:
        """UTC, LMST or relative time, as in the browser."""
        for plot in self.all_plots():
            plot.getAxis("bottom").set_mode(mode)
        self._caption()

    def _caption(self) -> None:
        """The x caption (date, sol or origin) under the last row, for the left edge of the visible span."""
        rows = self.all_plots()
        if rows:
            bottom = rows[-1].getAxis("bottom")
            bottom.setLabel(bottom.describe(self.x_range()[0]))

    def _range_changed(self, *_args) -> None:
        self._caption()
        self._reference_fit()
        self.range_changed.emit(*self.x_range())

    # --- reference overlay ----------------------------------------------------------------------------------------

    def choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference waveforms (drawn over the background)",
                                              self.reference_path or "",
                                              "Waveforms (*.mseed *.miniseed *.sac *.SAC);;All files (*)")
        if path:
            self.load_reference(path)

    def load_reference(self, path: str | Path) -> bool:
        """Read ``path`` and draw it over the background of the matching channels; a file that cannot be used
        gives one line (view status and ``message``), naming it, and leaves the view as it was."""
        try:
            stream = read_reference(path)
            if self.result is not None:
                unmatched = [tr.id for tr in self.result.background if not match_reference(stream, tr.id)]
                if len(unmatched) == len(self.result.background):
                    ids = ", ".join(sorted({tr.id for tr in stream}))
                    raise InputFileError(f"no trace matches the separation's channels (the file holds {ids})", path)
        except UnmixError as exc:
            line = f"reference not loaded: {exc.message}"
            self.status.setText(f"  {line}")
            self.message.emit(line)
            return False
        self.reference, self.reference_path = stream, str(path)
        self.clear_reference_button.setEnabled(True)
        self._draw_reference()
        self.message.emit(f"reference {self.reference_path}: {len(stream)} trace(s) drawn over the background")
        return True

    def clear_reference(self) -> None:
        """Remove the reference curves and forget the file."""
        self._remove_reference_curves()
        self.reference, self.reference_path = None, None
        self.clear_reference_button.setEnabled(False)
        self.reference_info.hide()

    def _remove_reference_curves(self) -> None:
        for legend in self.legends:
            scene = legend.scene()
            if scene is not None:
                scene.removeItem(legend)
        drawn = {id(c) for curves in self.reference_curves.values() for c in curves}
        for plot in self.plots:
            for curve in [c for c in plot.listDataItems() if id(c) in drawn]:
                plot.removeItem(curve)
        self.reference_curves, self.legends = {}, []

    def _draw_reference(self) -> None:
        """One curve per reference trace on the upper row of the background trace it matches, in the file's
        values (the view's unit), with a legend naming the file."""
        self._remove_reference_curves()
        if self.result is None or self.reference is None:
            return
        name = Path(self.reference_path or "").name
        pen = pg.mkPen(self.REFERENCE_COLOUR, width=1)
        for plot, bg in zip(self.plots, self.result.background, strict=False):
            matched = match_reference(self.reference, bg.id)
            curves = []
            for tr in matched:
                x = tr.stats.starttime.timestamp - self.t_ref + np.arange(tr.stats.npts) * tr.stats.delta
                curve = plot.plot(x, _samples(tr), pen=pen, connect="finite")
                curve.setDownsampling(auto=True, method="peak")
                curve.setClipToView(True)
                curve.setZValue(5)
                curves.append(curve)
            self.reference_curves[bg.id] = curves
            if curves and not self.legends:
                self.legends.append(self._reference_legend(plot, curves[0], name))
        self._reference_fit()

    def _reference_legend(self, plot: pg.PlotItem, curve: pg.PlotDataItem, name: str) -> pg.LegendItem:
        """A small legend (background, reference file) in the top right corner of the first row with a reference."""
        legend = pg.LegendItem(offset=(-6, 4), labelTextSize="8pt", labelTextColor="#303030",
                               brush=(255, 255, 255, 235), pen=pg.mkPen((190, 190, 190)), verSpacing=-6)
        legend.setParentItem(plot.getViewBox())
        background = self._background_curve(plot)
        if background is not None:
            legend.addItem(background, "background")
        legend.addItem(curve, f"reference: {html.escape(name)}")
        return legend

    def _background_curve(self, plot: pg.PlotItem) -> pg.PlotDataItem | None:
        mine = set(map(id, plot.listDataItems()))
        return next((c for c in self.curves["background"] if id(c) in mine), None)

    def _reference_fit(self) -> None:
        """Correlation and SNR of the background against the reference over the visible span, per channel."""
        if self.result is None or self.reference is None:
            self.reference_info.hide()
            return
        x0, x1 = self.x_range()
        parts = []
        for bg in self.result.background:
            matched = match_reference(self.reference, bg.id)
            fit = reference_fit(bg, matched, self.t_ref, x0, x1) if matched else None
            comp = bg.stats.channel[-1:]
            if matched and matched[0].id != bg.id:
                comp = f"{comp} (← {matched[0].id})"
            parts.append(f"{comp}: no overlap" if fit is None and matched else f"{comp}: no match" if fit is None
                         else f"{comp}: r {fit[0]:.3f}, SNR {fit[1]:.1f} dB")
        unit = _unit(list(self.result.background))
        note = f"; the file carries no unit: drawn as {unit}" if unit != _unit(list(self.reference)) else ""
        self.reference_info.setText(f"Reference {Path(self.reference_path or '').name} vs background, visible "
                                    f"span: {'; '.join(parts)}{note}")
        self.reference_info.show()

    def _visibility(self, *_args) -> None:
        for key, curves in self.curves.items():
            for curve in curves:
                curve.setVisible(self.toggles[key].isChecked())


_RESPONSE_UNITS = {"VEL": "m/s", "ACC": "m/s²", "DISP": "m"}


def _unit(traces: list) -> str:
    """Unit of the traces' samples: the response removal's output recorded by ObsPy, else raw counts."""
    for tr in traces:
        for step in tr.stats.get("processing", []):
            if "remove_response" in step:
                for output, unit in _RESPONSE_UNITS.items():
                    if f"output='{output}'" in step or f'output="{output}"' in step:
                        return unit
    return "counts"


def read_reference(path: str | Path) -> Stream:
    """The traces of a reference waveform file (``unmix.io.read_file``: recognised waveform formats only, never a
    pickle); :class:`InputFileError` naming the file when it cannot be read or holds no samples."""
    from unmix.io import read_file

    stream = read_file(path)
    stream.traces = [tr for tr in stream if tr.stats.npts > 0]
    if not len(stream):
        raise InputFileError("no samples in the file", path)
    return stream


def match_reference(reference: Stream, trace_id: str) -> list[Trace]:
    """The reference traces of ``trace_id``: the same id; else the same component letter (last letter of the
    channel code) at the same station; else that letter anywhere in the file (location/channel codes differ)."""
    net, sta, _loc, cha = trace_id.split(".")
    same = [tr for tr in reference if tr.id == trace_id]
    if same:
        return same
    letter = [tr for tr in reference if tr.stats.channel[-1:] == cha[-1:]]
    station = [tr for tr in letter if (tr.stats.network, tr.stats.station) == (net, sta)]
    return station or letter


def reference_fit(background: Trace, reference: list[Trace], t_ref: float, x0: float, x1: float
                  ) -> tuple[float, float] | None:
    """(correlation, SNR dB) of ``background`` against ``reference`` over [x0, x1] (seconds after ``t_ref``): the
    reference is interpolated onto the background's samples there (``unmix.evaluation.metrics``, up to an offset);
    None with fewer than 3 common samples or a constant series."""
    from unmix.evaluation.metrics import correlation, snr_db

    st = background.stats
    x = st.starttime.timestamp - t_ref + np.arange(st.npts) * st.delta
    keep = (x >= x0) & (x <= x1)
    x, y = x[keep], _samples(background)[keep]
    ref = np.full(x.size, np.nan)
    for tr in reference:
        rx = tr.stats.starttime.timestamp - t_ref + np.arange(tr.stats.npts) * tr.stats.delta
        inside = np.isnan(ref) & (x >= rx[0]) & (x <= rx[-1])
        ref[inside] = np.interp(x[inside], rx, _samples(tr))
    ok = np.isfinite(ref) & np.isfinite(y)
    r = correlation(y[ok], ref[ok]) if ok.sum() >= 3 else None
    if r is None:
        return None
    return r, snr_db(ref[ok], y[ok])


def _samples(tr: Trace) -> np.ndarray:
    """A trace's samples as float64, masked (gap) samples as NaN."""
    data = tr.data
    if np.ma.isMaskedArray(data):
        return np.ma.filled(data.astype(np.float64), np.nan)
    return np.asarray(data, dtype=np.float64)


def _separation_summary(result, target: str = "") -> str:
    """One line: method, what was removed (the removed parts' names, unless the method calls its one part just
    'removed'), and from where."""
    names = [n for n in result.removed if n != "removed"]
    what = ", ".join(names) if names else ("the separated part" if result.removed else "nothing")
    method = result.info.get("method", "") if isinstance(result.info, dict) else ""
    where = f" from {target}" if target else ""
    return f"{method + ': ' if method else ''}removed {what}{where}"


def _log_ticks(lo: float, hi: float) -> list:
    """Ticks at 1, 2, 5 × 10^n between ``lo`` and ``hi`` for an axis in log mode (positions in log10)."""
    values = [m * 10.0**d for d in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
              for m in (1, 2, 5) if lo <= m * 10.0**d <= hi]
    return [[(math.log10(v), f"{v:g}") for v in values], []]


def _select(stream, trace_id: str) -> list:
    if stream is None:
        return []
    net, sta, loc, cha = trace_id.split(".")
    return list(stream.select(network=net, station=sta, location=loc, channel=cha))


def _sum_removed(removed: dict, trace_id: str) -> list:
    """One trace per segment: the sum of every removed source (they share the background's sampling)."""
    parts = [_select(stream, trace_id) for stream in removed.values()]
    parts = [p for p in parts if p]
    if not parts:
        return []
    total = [tr.copy() for tr in parts[0]]
    for other in parts[1:]:
        for tr, extra in zip(total, other, strict=False):
            n = min(tr.stats.npts, extra.stats.npts)
            tr.data = np.asarray(tr.data[:n], dtype=np.float64) + np.asarray(extra.data[:n], dtype=np.float64)
    return total


class ResultsPanel(QWidget):
    """The result views as tabs, with the scale they show."""

    scale_changed = Signal(int)
    names_requested = Signal()
    compare_requested = Signal()
    generate_requested = Signal()
    separate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QTabWidget

        self.scale_combo = QComboBox()
        self.scale_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.scale_combo.setToolTip("Scale of the clustering shown in these views")
        self.scale_combo.currentIndexChanged.connect(self._scale_changed)
        self.summary = QLabel("")
        self.names_button = QPushButton("Names…")
        self.names_button.setToolTip("name the clusters of the table (names are saved in the table file)")
        self.names_button.setEnabled(False)
        self.names_button.clicked.connect(self.names_requested)
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("match the clusters with those of another cluster table (or of another scale) "
                                       "and copy names across")
        self.compare_button.clicked.connect(self.compare_requested)
        self.generate_button = QPushButton("Generate…")
        self.generate_button.setToolTip("synthesise waveforms with the statistics of a cluster and save them as "
                                        "miniSEED")
        self.generate_button.clicked.connect(self.generate_requested)
        self.separate_button = QPushButton("Separate…")
        self.separate_button.setToolTip("separate the most confident windows of a cluster at this scale and export "
                                        "them (unmix separate --target-cluster)")
        self.separate_button.clicked.connect(self.separate_requested)
        for button in (self.compare_button, self.generate_button, self.separate_button):
            button.setEnabled(False)
        self.tabs = QTabWidget()
        self.histograms = HistogramView()
        self.timeline = OccupancyTimeline()
        self.latent = LatentView()
        self.aligned = AlignedView()
        self.separation = SeparationView()
        self.tabs.addTab(self.histograms, "Time of day")
        self.tabs.addTab(self.timeline, "Over time")
        self.tabs.addTab(self.latent, "Latent space")
        self.tabs.addTab(self.aligned, "Aligned waveforms")
        self.tabs.addTab(self.separation, "Separation")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(_Header(QLabel("Scale"), self.scale_combo, self.names_button, self.compare_button,
                                  self.generate_button, self.separate_button, self.summary))
        layout.addWidget(self.tabs, 1)
        self.scale_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def set_scales(self, scales: tuple[int, ...], rate: float | None, current: int | None = None) -> None:
        for button in (self.names_button, self.compare_button, self.generate_button, self.separate_button):
            button.setEnabled(bool(scales))
        self.scale_combo.blockSignals(True)
        self.scale_combo.clear()
        for s in scales:
            self.scale_combo.addItem(f"{s}" + (f" ({s / rate:.0f} s)" if rate else ""), int(s))
        index = self.scale_combo.findData(int(current)) if current is not None else 0
        self.scale_combo.setCurrentIndex(max(index, 0))
        self.scale_combo.blockSignals(False)

    def scale(self) -> int | None:
        data = self.scale_combo.currentData()
        return None if data is None else int(data)

    def set_scale(self, scale: int) -> None:
        index = self.scale_combo.findData(int(scale))
        if index >= 0 and index != self.scale_combo.currentIndex():
            self.scale_combo.setCurrentIndex(index)

    def _scale_changed(self, _index: int) -> None:
        scale = self.scale()
        if scale is not None:
            self.scale_changed.emit(scale)

    def set_products(self, products, label_of: Callable[[int], str] = str) -> None:
        """Fill the cluster views from an ``unmix.gui.tasks.ClusterProducts`` (None clears them); ``label_of(k)``
        is how a cluster is shown (the table's ``label``: number and name)."""
        for view in (self.histograms, self.latent, self.aligned):
            view.label_of = label_of
        if products is None:
            self.histograms.set_data(None, None)
            self.latent.set_data(None)
            self.aligned.set_data(None)
            self.summary.setText("")
            return
        text = f" at scale {products.scale}"
        self.histograms.set_data(products.hist_edges, products.hist_counts, text)
        self.latent.set_data(products.embedding, products.embedding_cluster, products.embedding_window,
                             products.embedding_method, text)
        self.aligned.set_data(products.aligned, products.components, text)
        self.summary.setText(f"  {products.n_windows} windows, {products.n_clusters} clusters")
