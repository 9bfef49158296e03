"""Spectrogram of one component, x-linked to the waveform browser; tiles arrive precomputed from a worker."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from unmix.gui.display import SpectrogramTile, psd_unit
from unmix.gui.views.time_axis import TimeAxis
from unmix.gui.views.waveform import LEFT_AXIS_WIDTH, RIGHT_MARGIN

MAX_RANGE_DB = 100.0
"""At most this many dB between the colour scale's ends: a band-pass display leaves most frequencies 150 dB and
more down, and the band itself would otherwise get a sliver of the colours."""


class LogFrequencyAxis(pg.AxisItem):
    """Left axis for data plotted in log10(frequency): ticks at 1-2-5 decades, labelled in Hz."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802
        decades = range(int(np.floor(minVal)) - 1, int(np.ceil(maxVal)) + 1)
        major = [float(d) for d in decades if minVal <= d <= maxVal]
        minor = [d + np.log10(m) for d in decades for m in (2, 5) if minVal <= d + np.log10(m) <= maxVal]
        return [(1.0, major), (0.5, minor)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [f"{10 ** v:.3g}" for v in values]


class ColourScale(QWidget):
    """Horizontal colour scale (PSD in dB relative to 1 unit²/Hz) in the view's header row.

    It sits outside the plot on purpose: a colour bar inside the plot item narrows its view box, and the
    spectrogram's time axis would no longer line up with the waveform browser's.
    """

    BAR_WIDTH = 110

    def __init__(self, colormap: pg.ColorMap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colormap = colormap
        self.levels: tuple[float, float] | None = None
        self.unit = psd_unit("counts")
        self.setFixedSize(self.BAR_WIDTH + 60, 20)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_levels(self, levels: tuple[float, float] | None, unit: str | None = None) -> None:
        """Levels in dB and the colour bar's unit (:func:`~unmix.gui.display.psd_unit`)."""
        self.levels = levels
        if unit is not None:
            self.unit = unit
        self.setToolTip("" if levels is None else f"PSD from {levels[0]:.0f} to {levels[1]:.0f} {self.unit}")
        left, right = self._text_widths()
        self.setFixedWidth(left + self.BAR_WIDTH + right)
        self.update()

    def texts(self) -> tuple[str, str]:
        """What is written left and right of the bar."""
        if self.levels is None:
            return "", ""
        lo, hi = (f"{v:.0f}" for v in self.levels)
        return lo, f"{hi} {self.unit}"

    def _text_widths(self) -> tuple[int, int]:
        metrics = self.fontMetrics()
        lo, hi = self.texts()
        return metrics.horizontalAdvance(lo) + 4, metrics.horizontalAdvance(hi) + 4

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        if self.levels is None:
            return
        painter = QPainter(self)
        lo, hi = self.texts()
        left, right = self._text_widths()
        bar = QRectF(left, 4, max(self.width() - left - right, 10), self.height() - 8)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for pos, colour in zip(*self.colormap.getStops(mode="qcolor"), strict=True):
            gradient.setColorAt(float(pos), QColor(colour))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor("#303030"))
        painter.drawRect(bar)
        align = Qt.AlignmentFlag.AlignVCenter
        painter.drawText(QRectF(0, 0, left - 2, self.height()), align | Qt.AlignmentFlag.AlignRight, lo)
        painter.drawText(QRectF(bar.right() + 3, 0, right, self.height()), align | Qt.AlignmentFlag.AlignLeft, hi)
        painter.end()


class SpectrogramView(QWidget):
    """Power spectral density (dB) against time and frequency; emits ``component_changed`` for the owner to compute."""

    component_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.component_combo = QComboBox()
        self.component_combo.currentTextChanged.connect(lambda c: c and self.component_changed.emit(c))
        self.status = QLabel("")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        top.addWidget(QLabel("Component"))
        top.addWidget(self.component_combo)
        top.addWidget(self.status, 1)
        self.colormap = pg.colormap.get("viridis")
        self.scale_legend = ColourScale(self.colormap)
        top.addWidget(self.scale_legend)
        self.axis = TimeAxis("bottom")
        self.plot = pg.PlotWidget(axisItems={"bottom": self.axis, "left": LogFrequencyAxis("left")}, background="w")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "Frequency", units="Hz")
        self.plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        m_left, m_top, m_right, m_bottom = self.plot.getPlotItem().layout.getContentsMargins()
        self.plot.getPlotItem().layout.setContentsMargins(m_left, m_top, m_right + RIGHT_MARGIN, m_bottom)
        self.plot.getViewBox().setMouseEnabled(x=False, y=False)
        self.plot.disableAutoRange()
        self.images: list[pg.ImageItem] = []
        self.shown: tuple = ()  # what the owner drew last (key, component, window, covered span)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)

    def set_components(self, components: list[str], current: str | None = None) -> None:
        self.component_combo.blockSignals(True)
        self.component_combo.clear()
        self.component_combo.addItems(components)
        if current in components:
            self.component_combo.setCurrentText(current)
        self.component_combo.blockSignals(False)

    def component(self) -> str:
        return self.component_combo.currentText()

    def set_reference(self, t_ref: float, mode: str) -> None:
        self.axis.set_reference(t_ref)
        self.axis.set_mode(mode)

    def set_axis_mode(self, mode: str) -> None:
        self.axis.set_mode(mode)

    def set_x_range(self, x0: float, x1: float) -> None:
        """Follow the waveform browser's time range (views are aligned by range, not by screen position)."""
        self.plot.setXRange(x0, x1, padding=0)

    def clear(self, message: str = "") -> None:
        for image in self.images:
            self.plot.removeItem(image)
        self.images = []
        self.shown = ()
        self.scale_legend.set_levels(None)
        self.status.setText(message)

    def set_status(self, message: str) -> None:
        self.status.setText(message)

    def set_tiles(self, tiles: list[SpectrogramTile], label: str = "") -> None:
        """Draw precomputed tiles; colour levels from robust percentiles of all of them (at most
        :data:`MAX_RANGE_DB` apart), the colour bar in the unit and the status with the filter of the samples they
        were computed from."""
        self.clear(label + (_band_text(tiles[0].band) if tiles else ""))
        if not tiles:
            self.status.setText("no segment long enough for a spectrogram")
            return
        values = np.concatenate([t.image[::4, ::2].ravel() for t in tiles])
        top = float(np.percentile(values, 99.5))
        levels = (max(float(np.percentile(values, 2)), top - MAX_RANGE_DB), top)
        for tile in tiles:
            image = pg.ImageItem(tile.image, axisOrder="col-major")
            image.setColorMap(self.colormap)
            image.setLevels(levels)
            lo, hi = np.log10(tile.f_min), np.log10(tile.f_max)
            image.setRect(QRectF(tile.x0, lo, tile.x1 - tile.x0, hi - lo))
            self.plot.addItem(image)
            self.images.append(image)
        self.scale_legend.set_levels(levels, psd_unit(tiles[0].unit))
        self.plot.setYRange(np.log10(min(t.f_min for t in tiles)), np.log10(max(t.f_max for t in tiles)), padding=0)


def _band_text(band: tuple[float | None, float | None] | None) -> str:
    """'   filtered 0.1–1 Hz' (or high-/low-pass) for the status; '' when unfiltered."""
    if band is None:
        return ""
    lo, hi = band
    if lo is not None and hi is not None:
        return f"   filtered {lo:g}–{hi:g} Hz"
    return f"   high-pass {lo:g} Hz" if lo is not None else f"   low-pass {hi:g} Hz"
