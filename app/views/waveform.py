"""Waveform browser: one row per component on a shared time axis, drawn from min/max pyramids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from unmix.gui.display import FILTER_PRESETS, Display, check_band
from unmix.gui.views.time_axis import AXIS_MODES, TimeAxis

TRACE_COLOURS = ("#1f4e99", "#2a7a3b", "#a23b2c", "#6b3fa0", "#8a6d1f")
GAP_BRUSH = (150, 150, 150, 70)
OVERLAP_BRUSH = (230, 140, 0, 90)
CUSTOM_FILTER = "Custom…"
"""The filter entry whose corners the user types (either may be left empty: high-pass or low-pass)."""
MAX_GAIN = 1e4
LEFT_AXIS_WIDTH = 72
RIGHT_MARGIN = 8
"""Left axis width and right margin (px) shared by every view x-aligned with the browser."""


@dataclass(frozen=True)
class Shortcut:
    keys: tuple[Qt.Key, ...]
    label: str
    description: str
    action: Callable[[WaveformView], None]


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut((Qt.Key.Key_Right,), "→", "pan right by a quarter window", lambda v: v.pan(0.25)),
    Shortcut((Qt.Key.Key_Left,), "←", "pan left by a quarter window", lambda v: v.pan(-0.25)),
    Shortcut((Qt.Key.Key_PageDown, Qt.Key.Key_Space), "PgDn / Space", "next page", lambda v: v.pan(1.0)),
    Shortcut((Qt.Key.Key_PageUp, Qt.Key.Key_B), "PgUp / B", "previous page", lambda v: v.pan(-1.0)),
    Shortcut((Qt.Key.Key_Plus, Qt.Key.Key_Equal), "+", "zoom in (×2)", lambda v: v.zoom(0.5)),
    Shortcut((Qt.Key.Key_Minus,), "−", "zoom out (×2)", lambda v: v.zoom(2.0)),
    Shortcut((Qt.Key.Key_Home, Qt.Key.Key_R), "Home / R", "show the whole record", lambda v: v.reset()),
    Shortcut((Qt.Key.Key_F,), "F", "toggle the band-pass filter", lambda v: v.toggle_filter()),
    Shortcut((Qt.Key.Key_T,), "T", "cycle the time axis (UTC, LMST, relative)", lambda v: v.cycle_axis_mode()),
    Shortcut((Qt.Key.Key_Up,), "↑", "amplitude zoom in, every row (Shift+wheel: one row)", lambda v: v.scale_gain(2.0)),
    Shortcut((Qt.Key.Key_Down,), "↓", "amplitude zoom out, every row", lambda v: v.scale_gain(0.5)),
    Shortcut((Qt.Key.Key_0,), "0", "amplitude: fit every row again (gain 1)", lambda v: v.reset_gain()),
    Shortcut((Qt.Key.Key_A,), "A", "annotation mode: drag for a span, click for a pick",
             lambda v: v.annotate_requested.emit()),
)
"""The one table of browser keys: drives :meth:`WaveformView.keyPressEvent` and the help dialog."""


class WaveformView(QWidget):
    """Rows of traces with linked x axes; draws a :class:`~unmix.gui.display.Display`, computes nothing heavy.

    Signals: ``filter_requested(band or None)`` when the user toggles/changes the filter (the owner computes the
    filtered display in a worker and calls :meth:`set_display`), ``axis_mode_changed(mode)``, ``range_changed(x0, x1)``.
    """

    filter_requested = Signal(object)
    annotate_requested = Signal()
    filter_invalid = Signal(str)
    axis_mode_changed = Signal(str)
    range_changed = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.display: Display | None = None
        self.filter_status = ""  # why the custom corners are not valid ("" when they are)
        self.axis_mode = "utc"
        self.plots: list[pg.PlotItem] = []
        self.curves: list[pg.PlotDataItem] = []
        self.gains: list[float] = []  # amplitude zoom per row: 1 fits the visible data, 2 shows half its range

        self.title = QLabel("No record: open files (Ctrl+O), drop them here, or generate a synthetic record")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the title may be clipped, never widen the window: a 1366-px laptop screen must hold the whole window
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(60)
        self.title.setToolTip(self.title.text())
        self.axis_combo = QComboBox()
        for mode, text in AXIS_MODES.items():
            self.axis_combo.addItem(text, mode)
        self.axis_combo.setToolTip("Time axis (T)")
        self.axis_combo.currentIndexChanged.connect(lambda _i: self.set_axis_mode(self.axis_combo.currentData()))
        self.filter_check = QCheckBox("Filter")
        self.filter_check.setToolTip("Band-pass filter the traces (F)")
        self.filter_combo = QComboBox()
        self.filter_combo.addItems([*FILTER_PRESETS, CUSTOM_FILTER])
        self.filter_combo.setCurrentIndex(1)
        self.filter_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.filter_combo.setMinimumContentsLength(12)
        self.filter_combo.setToolTip("Band-pass preset")
        self.filter_check.toggled.connect(self._filter_changed)
        self.filter_combo.currentIndexChanged.connect(self._preset_changed)
        self.low_edit, self.high_edit = QLineEdit(), QLineEdit()
        for edit, text in ((self.low_edit, "low Hz"), (self.high_edit, "high Hz")):
            edit.setPlaceholderText(text)
            edit.setMaximumWidth(64)
            edit.setToolTip("Corner frequency in Hz (empty: open on this side); below the record's Nyquist")
            edit.editingFinished.connect(self._custom_changed)
            edit.setVisible(False)
        tools = QHBoxLayout()
        tools.setContentsMargins(4, 2, 4, 2)
        tools.addWidget(self.title, 1)
        buttons = (("−", "Zoom out (−)", lambda: self.zoom(2.0)), ("+", "Zoom in (+)", lambda: self.zoom(0.5)),
                   ("⟲", "Whole record (Home)", self.reset))
        for text, tip, slot in buttons:
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(slot)
            tools.addWidget(button)
        tools.addSpacing(8)
        tools.addWidget(QLabel("Axis"))
        tools.addWidget(self.axis_combo)
        tools.addSpacing(8)
        tools.addWidget(self.filter_check)
        tools.addWidget(self.filter_combo)
        tools.addWidget(self.low_edit)
        tools.addWidget(self.high_edit)
        for w in (self.axis_combo, self.filter_check, self.filter_combo):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.graphics.ci.setSpacing(0)
        # no left margin and a fixed right one: the spectrogram (another widget) uses the same, so that one time
        # falls on the same screen column in both
        self.graphics.ci.setContentsMargins(0, 4, RIGHT_MARGIN, 4)
        self.graphics.viewport().installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(tools)
        layout.addWidget(self.graphics, 1)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(20)
        self._refresh_timer.timeout.connect(self.refresh)

    # --- data -----------------------------------------------------------------------------------------------------

    def set_display(self, display: Display | None, keep_range: bool = False) -> None:
        """Show ``display`` (one instrument); with ``keep_range`` the visible span is kept (e.g. after filtering)."""
        old_range = self.x_range() if keep_range and self.plots else None
        self.display = display
        self.graphics.clear()
        self.plots, self.curves = [], []
        if display is None or len(self.gains) != len(display.components):
            self.gains = [1.0] * (len(display.components) if display is not None else 0)
        if display is None:
            self._set_title("No record")
            return
        band = display.band
        extra = "" if band is None else f"   filtered {_band_text(band)}"
        if display.conversion:
            extra += f"   {display.conversion}"
        self._set_title(f"<b>{display.key}</b>{extra}")
        lo, hi = display.span
        pad = max(0.02 * (hi - lo), 1.0)
        first: pg.PlotItem | None = None
        for row, comp in enumerate(display.components):
            axis = TimeAxis("bottom")
            axis.set_reference(display.t_ref)
            axis.set_mode(self.axis_mode)
            plot = self.graphics.addPlot(row=row, col=0, axisItems={"bottom": axis})
            plot.setLabel("left", self._row_label(row, comp))
            plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
            plot.showGrid(x=True, y=False, alpha=0.15)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            vb = plot.getViewBox()
            vb.setMouseEnabled(x=True, y=False)
            vb.enableAutoRange(axis="y")
            vb.setAutoVisible(y=True)
            vb.setLimits(xMin=lo - pad, xMax=hi + pad, minXRange=20.0 / max(_rate(display), 1e-9))
            for a, b in display.gaps:
                plot.addItem(pg.LinearRegionItem((a, b), movable=False, brush=GAP_BRUSH, pen=pg.mkPen(None)))
            for a, b in display.overlaps:
                plot.addItem(pg.LinearRegionItem((a, b), movable=False, brush=OVERLAP_BRUSH, pen=pg.mkPen(None)))
            curve = plot.plot(pen=pg.mkPen(TRACE_COLOURS[row % len(TRACE_COLOURS)], width=1))
            curve.setClipToView(False)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            if row < len(display.components) - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
                plot.getAxis("bottom").setPen(pg.mkPen("#b0b0b0"))
            self.plots.append(plot)
            self.curves.append(curve)
        if first is not None:
            first.getViewBox().sigXRangeChanged.connect(self._range_changed)
        self.graphics.ci.layout.setRowStretchFactor(len(self.plots) - 1, 1)
        if old_range is not None:
            self.set_x_range(*old_range)
        else:
            self.set_x_range(lo, hi)
        self.refresh()

    def _set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setToolTip(text)

    def refresh(self) -> None:
        """Redraw the visible range from the pyramids (cheap: a few thousand points per row)."""
        if self.display is None or not self.plots:
            return
        x0, x1 = self.x_range()
        width = x1 - x0
        pixels = max(int(self.plots[0].getViewBox().width()), 200)
        for comp, curve in zip(self.display.components, self.curves, strict=True):
            x, y = self.display.traces[comp].query(x0 - width / 2, x1 + width / 2, 2 * pixels)
            curve.setData(x, y, connect="finite")
        self._apply_gains()
        bottom = self.plots[-1].getAxis("bottom")
        bottom.setLabel(bottom.describe(x0))

    # --- navigation -----------------------------------------------------------------------------------------------

    def x_range(self) -> tuple[float, float]:
        if not self.plots:
            return 0.0, 1.0
        x0, x1 = self.plots[0].getViewBox().viewRange()[0]
        return float(x0), float(x1)

    def set_x_range(self, x0: float, x1: float) -> None:
        if self.plots:
            self.plots[0].setXRange(x0, x1, padding=0)

    def pan(self, fraction: float) -> None:
        x0, x1 = self.x_range()
        shift = fraction * (x1 - x0)
        self.set_x_range(x0 + shift, x1 + shift)

    def zoom(self, factor: float) -> None:
        x0, x1 = self.x_range()
        mid, half = (x0 + x1) / 2, (x1 - x0) / 2 * factor
        self.set_x_range(mid - half, mid + half)

    def reset(self) -> None:
        if self.display is not None:
            self.set_x_range(*self.display.span)

    def cycle_axis_mode(self) -> None:
        modes = list(AXIS_MODES)
        self.set_axis_mode(modes[(modes.index(self.axis_mode) + 1) % len(modes)])

    def set_axis_mode(self, mode: str) -> None:
        if mode not in AXIS_MODES:
            return
        changed = mode != self.axis_mode
        self.axis_mode = mode
        self.axis_combo.blockSignals(True)
        self.axis_combo.setCurrentIndex(list(AXIS_MODES).index(mode))
        self.axis_combo.blockSignals(False)
        for plot in self.plots:
            plot.getAxis("bottom").set_mode(mode)
        if self.plots:
            bottom = self.plots[-1].getAxis("bottom")
            bottom.setLabel(bottom.describe(self.x_range()[0]))
        if changed:
            self.axis_mode_changed.emit(mode)

    def bottom_axis(self) -> TimeAxis | None:
        return self.plots[-1].getAxis("bottom") if self.plots else None

    # --- amplitude ------------------------------------------------------------------------------------------------

    def _row_label(self, row: int, comp: str) -> str:
        """``BHU [m/s]``, with ``×4`` when the row's amplitude is zoomed."""
        assert self.display is not None
        gain = self.gains[row] if row < len(self.gains) else 1.0
        zoom = "" if gain == 1.0 else f" ×{gain:g}"
        return f"{self.display.key.split('#')[0].split('.')[-1]}{comp}{zoom} [{self.display.unit}]"

    def set_gain(self, row: int, gain: float) -> None:
        """Amplitude zoom of one row: the row shows 1/gain of its visible data range, centred (1: fit)."""
        if not 0 <= row < len(self.gains):
            return
        self.gains[row] = float(min(max(gain, 1.0 / MAX_GAIN), MAX_GAIN))
        if self.display is not None and row < len(self.plots):
            self.plots[row].setLabel("left", self._row_label(row, self.display.components[row]))
        self._apply_gains()

    def scale_gain(self, factor: float, row: int | None = None) -> None:
        """Multiply the gain of one row (None: every row) by ``factor``."""
        for r in range(len(self.gains)) if row is None else [row]:
            self.set_gain(r, self.gains[r] * factor)

    def reset_gain(self) -> None:
        for r in range(len(self.gains)):
            self.set_gain(r, 1.0)

    def _apply_gains(self) -> None:
        for row, (plot, curve) in enumerate(zip(self.plots, self.curves, strict=False)):
            vb = plot.getViewBox()
            gain = self.gains[row] if row < len(self.gains) else 1.0
            if gain == 1.0:
                vb.enableAutoRange(axis="y")
                continue
            x, y = curve.getData()
            if y is None or not len(y):
                continue
            x0, x1 = self.x_range()
            shown = y[(x >= x0) & (x <= x1) & np.isfinite(y)]
            if not shown.size:
                continue
            # centred on the median, so that a spike or a drift does not push the trace's body off the row
            lo, hi, mid = float(shown.min()), float(shown.max()), float(np.median(shown))
            half = max((hi - lo) / 2, 1e-30) / gain
            vb.disableAutoRange(axis="y")
            vb.setYRange(mid - half, mid + half, padding=0)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        """Shift+wheel over a row zooms that row's amplitude."""
        if (event.type() == QEvent.Type.Wheel and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
                and self.plots):
            row = self.row_at(self.graphics.mapToScene(event.position().toPoint()))
            if row is not None:
                delta = event.angleDelta().y() or event.angleDelta().x()
                self.scale_gain(1.25 if delta > 0 else 0.8, row)
                return True
        return super().eventFilter(obj, event)

    def row_at(self, scene_pos) -> int | None:
        """The row whose plot area holds a scene position."""
        for row, plot in enumerate(self.plots):
            if plot.getViewBox().sceneBoundingRect().contains(scene_pos):
                return row
        return None

    # --- filter ---------------------------------------------------------------------------------------------------

    def band(self) -> tuple[float | None, float | None] | None:
        if not self.filter_check.isChecked():
            return None
        if self.filter_combo.currentText() == CUSTOM_FILTER:
            return self.custom_band()
        return FILTER_PRESETS[self.filter_combo.currentText()]

    def custom_band(self) -> tuple[float | None, float | None] | None:
        """The typed corners, checked against the shown record's Nyquist; None (and the reason in
        ``filter_status``) when they are not valid."""
        try:
            corners = []
            for edit, name in ((self.low_edit, "low"), (self.high_edit, "high")):
                text = edit.text().strip()
                try:
                    corners.append(float(text) if text else None)
                except ValueError:
                    raise ValueError(f"the {name} corner is not a number: {text!r}") from None
            rate = _rate(self.display) if self.display is not None else float("inf")
            band = check_band(corners[0], corners[1], rate)
        except ValueError as exc:
            self.filter_status = str(exc)
            for edit in (self.low_edit, self.high_edit):
                edit.setStyleSheet("QLineEdit { background: #f6d0cc; }")
                edit.setToolTip(f"{exc}")
            return None
        self.filter_status = ""
        for edit in (self.low_edit, self.high_edit):
            edit.setStyleSheet("")
            edit.setToolTip("Corner frequency in Hz (empty: open on this side); below the record's Nyquist")
        return band

    def set_custom_band(self, low: float | None, high: float | None) -> None:
        """Select the custom filter with these corners, switch the filter on and request it."""
        self.low_edit.setText("" if low is None else f"{low:g}")
        self.high_edit.setText("" if high is None else f"{high:g}")
        self.filter_combo.blockSignals(True)
        self.filter_combo.setCurrentText(CUSTOM_FILTER)
        self.filter_combo.blockSignals(False)
        self._show_custom()
        self.filter_check.setChecked(True)
        self._filter_changed()

    def _show_custom(self) -> None:
        custom = self.filter_combo.currentText() == CUSTOM_FILTER
        self.low_edit.setVisible(custom)
        self.high_edit.setVisible(custom)

    def _custom_changed(self) -> None:
        if self.filter_check.isChecked() and self.filter_combo.currentText() == CUSTOM_FILTER:
            self._filter_changed()

    def toggle_filter(self) -> None:
        self.filter_check.setChecked(not self.filter_check.isChecked())

    def set_filter(self, preset: str | None) -> None:
        """Select a preset by name, or ``custom:LOW-HIGH`` (either may be empty; None: filter off), and request it."""
        if preset is not None and preset.startswith("custom:"):
            low, _, high = preset[len("custom:"):].partition("-")
            try:
                self.set_custom_band(float(low) if low else None, float(high) if high else None)
                return
            except ValueError:
                preset = None
        if preset is not None and preset in FILTER_PRESETS:
            self.filter_combo.blockSignals(True)
            self.filter_combo.setCurrentText(preset)
            self.filter_combo.blockSignals(False)
        self.filter_check.setChecked(preset is not None)
        self._filter_changed()

    def filter_preset(self) -> str | None:
        """The filter as the project stores it: a preset's name, ``custom:LOW-HIGH``, or None when off."""
        if not self.filter_check.isChecked():
            return None
        if self.filter_combo.currentText() == CUSTOM_FILTER:
            band = self.custom_band()
            return None if band is None else "custom:" + "-".join("" if f is None else f"{f:g}" for f in band)
        return self.filter_combo.currentText()

    def _preset_changed(self, _index: int) -> None:
        self._show_custom()
        if self.filter_check.isChecked():
            self._filter_changed()

    def _filter_changed(self, *_args) -> None:
        band = self.band()
        if band is None and self.filter_check.isChecked():
            self.filter_invalid.emit(f"Filter: {self.filter_status}")  # invalid corners: nothing is requested
            return
        self.filter_requested.emit(band)

    # --- events ---------------------------------------------------------------------------------------------------

    def _range_changed(self, *_args) -> None:
        self._refresh_timer.start()
        self.range_changed.emit(*self.x_range())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = Qt.Key(event.key())
        for shortcut in SHORTCUTS:
            if key in shortcut.keys and not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                shortcut.action(self)
                event.accept()
                return
        super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._refresh_timer.start()


def _rate(display: Display) -> float:
    seg = next(iter(display.traces.values())).segments[0]
    return 1.0 / seg.dt


def _band_text(band: tuple[float | None, float | None]) -> str:
    lo, hi = band
    if lo is not None and hi is not None:
        return f"{lo:g}–{hi:g} Hz"
    return f"> {lo:g} Hz" if lo is not None else f"< {hi:g} Hz"
