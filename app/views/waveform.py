"""Waveform browser: one row per component on a shared time axis, drawn from min/max pyramids; optionally the rows
of every loaded record stacked on that axis (as Snuffler does).

Cheap to repaint on purpose (a pan or zoom repaints every row): one visible time axis under the last row, the grid
and the row separators drawn by a light item per row from ticks computed once per range change, not by axes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QLineF, QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsObject,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
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
GRID_MAJOR = QColor("#d9d9d9")
GRID_MINOR = QColor("#efefef")
SEPARATOR = QColor("#b0b0b0")
RECORD_SEPARATOR = QColor("#404040")
"""Opaque grid and separator colours (no blending on a white background)."""
STACK_TIP = "Show the rows of every loaded record stacked on one time axis; off: the selected record only"
TICK_TEXT_CACHE = 4096


class CachedTimeAxis(TimeAxis):
    """The browser's time axis: tick texts are kept per (mode, reference, spacing, value), so a pan formats only
    the ticks that came into view (a tick's view value is the same float at every pan)."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self._texts: dict[tuple[str, float, float, float], str] = {}

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if len(self._texts) > TICK_TEXT_CACHE:
            self._texts.clear()
        out = []
        for v in values:
            key = (self.mode, self.t_ref, spacing, v)
            text = self._texts.get(key)
            if text is None:
                text = self._texts[key] = self.format(v, spacing)
            out.append(text)
        return out


class TimeGrid(QGraphicsObject):
    """Vertical grid lines of one row at the time axis's ticks, and the line under the row, drawn in the row's
    pixel frame behind the traces: a few lines per repaint instead of an axis repaint (pyqtgraph's grid is drawn
    by the axis over the whole row)."""

    def __init__(self, vb: pg.ViewBox, separator: bool, record_start: bool = False) -> None:
        super().__init__(vb)
        self.vb = vb
        self.separator = separator
        self.record_start = record_start
        self.major = self.minor = np.empty(0)
        self.setZValue(-1e5)  # above the view's background, below its items
        self._rect = QRectF(vb.rect())
        vb.sigResized.connect(self._resized)

    def _resized(self, *_args) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(self.vb.rect())

    def set_ticks(self, major: np.ndarray, minor: np.ndarray) -> None:
        self.major, self.minor = major, minor
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect

    def paint(self, p: QPainter, *_args) -> None:
        rect = self._rect
        x0, x1 = self.vb.viewRange()[0]
        if x1 <= x0 or rect.width() <= 0:
            return
        scale = rect.width() / (x1 - x0)
        top, bottom = rect.top(), rect.bottom()
        for values, colour in ((self.minor, GRID_MINOR), (self.major, GRID_MAJOR)):
            if values.size:
                p.setPen(QPen(colour, 0))
                p.drawLines([QLineF(x, top, x, bottom) for x in rect.left() + (values - x0) * scale])
        if self.separator:
            p.setPen(QPen(SEPARATOR, 0))
            p.drawLine(QLineF(rect.left(), bottom, rect.right(), bottom))
        if self.record_start:
            p.setPen(QPen(RECORD_SEPARATOR, 2))
            p.drawLine(QLineF(rect.left(), top + 1, rect.right(), top + 1))


class RecordTag(QGraphicsRectItem):
    """The record's key in the top-left corner of its first row (stacked view), fixed on screen while panning."""

    def __init__(self, vb: pg.ViewBox, text: str, bold: bool) -> None:
        super().__init__(vb)
        self.text = QGraphicsSimpleTextItem(text, self)
        font = QFont(self.text.font())
        font.setBold(bold)
        self.text.setFont(font)
        self.text.setBrush(QBrush(QColor("#202020")))
        self.text.setPos(4, 1)
        self.setRect(self.text.boundingRect().adjusted(0, 0, 8, 2))
        self.setBrush(QBrush(QColor(255, 255, 255, 215)))
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setPos(2, 3)
        self.setZValue(1e4)


@dataclass(eq=False)
class _Row:
    """One row of the browser: a component of a shown record, shifted by ``shift`` seconds from the record's own
    time origin to the browser's (that of :attr:`WaveformView.display`); ``index`` is its place in ``plots``
    when it belongs to the shown record, else None (then ``gain`` is its amplitude zoom)."""

    display: Display
    component: str
    plot: pg.PlotItem
    curve: pg.PlotDataItem
    shift: float
    grid: TimeGrid
    index: int | None
    gain: float = 1.0
    tag: RecordTag | None = field(default=None)
    data: tuple[np.ndarray, np.ndarray] = field(default=(np.empty(0), np.empty(0)))


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
    filtered display in a worker and calls :meth:`set_display`), ``axis_mode_changed(mode)``, ``range_changed(x0, x1)``,
    ``stack_changed(on)``.

    ``plots``/``curves`` are the rows of the shown record (``display``), what the overlays draw on; ``rows`` are
    every row drawn, stacked records' rows included.
    """

    filter_requested = Signal(object)
    annotate_requested = Signal()
    filter_invalid = Signal(str)
    axis_mode_changed = Signal(str)
    range_changed = Signal(float, float)
    stack_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.display: Display | None = None
        self.filter_status = ""  # why the custom corners are not valid ("" when they are)
        self.axis_mode = "utc"
        self.plots: list[pg.PlotItem] = []
        self.curves: list[pg.PlotDataItem] = []
        self.rows: list[_Row] = []
        self.records: dict[str, Display] = {}  # every loaded record (for the stacked view), from set_records
        self._caption = ""
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
        self.stack_check = QCheckBox("All records")
        self.stack_check.setToolTip(STACK_TIP + " (load two or more)")
        self.stack_check.setEnabled(False)
        self.stack_check.toggled.connect(self._stack_toggled)
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
        tools.addWidget(self.stack_check)
        tools.addSpacing(8)
        tools.addWidget(self.filter_check)
        tools.addWidget(self.filter_combo)
        tools.addWidget(self.low_edit)
        tools.addWidget(self.high_edit)
        for w in (self.axis_combo, self.stack_check, self.filter_check, self.filter_combo):
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
        if display is None or len(self.gains) != len(display.components):
            self.gains = [1.0] * (len(display.components) if display is not None else 0)
        self._build(old_range)

    def set_records(self, displays: Mapping[str, Display]) -> None:
        """The loaded records (key → unfiltered display, in loading order) that "All records" stacks; the shown
        record's rows always come from :meth:`set_display` (filtered or converted)."""
        self.records = dict(displays)
        self.stack_check.setEnabled(len(self.records) >= 2)
        self.stack_check.setToolTip(STACK_TIP if len(self.records) >= 2 else STACK_TIP + " (load two or more)")
        if self.stack_check.isChecked():
            self._build(self.x_range() if self.plots else None)

    @property
    def stacked(self) -> bool:
        """True when the rows of every loaded record are shown (the toggle is on and two or more are loaded)."""
        return self.stack_check.isChecked() and len(self.records) >= 2 and self.display is not None

    def set_stacked(self, on: bool) -> None:
        self.stack_check.setChecked(on)

    def _stack_toggled(self, on: bool) -> None:
        self._build(self.x_range() if self.plots else None)
        self.stack_changed.emit(on)

    def shown_displays(self) -> list[Display]:
        """The records drawn, top to bottom: the shown one alone, or every loaded record (the shown one as given to
        :meth:`set_display`) in loading order."""
        if self.display is None:
            return []
        if not self.stacked:
            return [self.display]
        shown = [self.display if key == self.display.key else d for key, d in self.records.items()]
        return shown if any(d is self.display for d in shown) else [self.display, *shown]

    def _build(self, old_range: tuple[float, float] | None) -> None:
        """Rebuild the rows (one per component of every shown record) on one linked time axis."""
        self.graphics.clear()
        self.rows, self.plots, self.curves = [], [], []
        display = self.display
        if display is None:
            self._set_title("No record")
            return
        self._set_title(self._title_text())
        shown = self.shown_displays()
        spans = [(a + d.t_ref - display.t_ref, b + d.t_ref - display.t_ref) for d in shown for a, b in [d.span]]
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        n_rows = sum(len(d.components) for d in shown)
        first: pg.PlotItem | None = None
        for disp in shown:
            for i, comp in enumerate(disp.components):
                row = self._add_row(disp, i, comp, last=len(self.rows) == n_rows - 1, limits=(lo, hi))
                if first is None:
                    first = row.plot
                else:
                    row.plot.setXLink(first)
        assert first is not None
        first.getViewBox().sigXRangeChanged.connect(self._range_changed)
        first.getViewBox().sigResized.connect(lambda *_: self._update_grid())
        self._caption = ""
        self.set_x_range(*(old_range if old_range is not None else display.span))
        self._update_grid()
        self.refresh()

    def _title_text(self) -> str:
        display = self.display
        assert display is not None
        band = display.band
        extra = "" if band is None else f"   filtered {_band_text(band)}"
        if display.conversion:
            extra += f"   {display.conversion}"
        if self.stacked:
            others = len(self.records) - 1
            extra += f"   + {others} other record{'s' * (others != 1)} stacked" + (
                " (as recorded)" if band is not None or display.conversion else "")
        return f"<b>{display.key}</b>{extra}"

    def _add_row(self, disp: Display, i: int, comp: str, last: bool, limits: tuple[float, float]) -> _Row:
        """One row: the component's curve, its record's gaps and overlaps, the grid; only the last row shows the
        time axis (the inner rows are separated by a line of their grid)."""
        assert self.display is not None
        current = disp is self.display
        axis_items = {}
        if last:
            axis = CachedTimeAxis("bottom")
            axis.set_reference(self.display.t_ref)
            axis.set_mode(self.axis_mode)
            axis_items["bottom"] = axis
        plot = self.graphics.addPlot(row=len(self.rows), col=0, axisItems=axis_items)
        plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        if not last:
            plot.hideAxis("bottom")
        vb = plot.getViewBox()
        vb.setMouseEnabled(x=True, y=False)
        vb.disableAutoRange()
        lo, hi = limits
        pad = max(0.02 * (hi - lo), 1.0)
        vb.setLimits(xMin=lo - pad, xMax=hi + pad, minXRange=20.0 / max(_rate(self.display), 1e-9))
        shift = disp.t_ref - self.display.t_ref
        for spans, brush in ((disp.gaps, GAP_BRUSH), (disp.overlaps, OVERLAP_BRUSH)):
            for a, b in spans:
                plot.addItem(pg.LinearRegionItem((a + shift, b + shift), movable=False, brush=brush,
                                                 pen=pg.mkPen(None)))
        curve = plot.plot(pen=pg.mkPen(TRACE_COLOURS[i % len(TRACE_COLOURS)], width=1))
        curve.setClipToView(False)
        record_start = self.stacked and i == 0
        grid = TimeGrid(vb, separator=not last, record_start=record_start and bool(self.rows))
        row = _Row(disp, comp, plot, curve, shift, grid, len(self.plots) if current else None)
        if record_start:
            note = "   (selected" + (", filtered)" if disp.band is not None else ")") if current else ""
            row.tag = RecordTag(vb, f"{disp.key}  [{disp.unit}]{note}", bold=current)
        self.rows.append(row)
        if current:
            self.plots.append(plot)
            self.curves.append(curve)
        if self.stacked:
            plot.getAxis("left").setStyle(maxTickLevel=0)
        plot.setLabel("left", self._label(row))
        return row

    def _set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setToolTip(text)

    def refresh(self) -> None:
        """Redraw the visible range from the pyramids (cheap: a few thousand points per row)."""
        self._refresh_timer.stop()  # a refresh pending from the range change would redo this one
        if self.display is None or not self.rows:
            return
        x0, x1 = self.x_range()
        width = x1 - x0
        pixels = max(int(self.rows[0].plot.getViewBox().width()), 200)
        for row in self.rows:
            a, b = x0 - row.shift - width / 2, x1 - row.shift + width / 2
            x, y = row.display.traces[row.component].query(a, b, 2 * pixels)
            row.data = (x + row.shift if row.shift else x, y)
            row.curve.setData(*row.data, connect="finite")
        self._apply_gains()
        self._update_caption()
        for row in self.rows:  # the views' transforms now: set while painting, they would ask for a second paint
            row.plot.getViewBox().updateMatrix()

    def _update_caption(self) -> None:
        """The time axis caption (date or sol of the left edge), set only when it changes (a label change
        re-lays the axis out)."""
        bottom = self.bottom_axis()
        if bottom is None:
            return
        caption = bottom.describe(self.x_range()[0])
        if caption != self._caption or caption != bottom.labelText:
            self._caption = caption
            bottom.setLabel(caption)

    def _update_grid(self) -> None:
        """Grid lines of every row at the time axis's ticks (once per range change, shared by the rows)."""
        bottom = self.bottom_axis()
        if bottom is None or not self.rows:
            return
        x0, x1 = self.x_range()
        levels = bottom.tickValues(x0, x1, max(self.rows[0].plot.getViewBox().width(), 1.0))
        major = np.asarray(levels[0][1] if levels else [], float)
        minor = np.asarray(levels[1][1] if len(levels) > 1 else [], float)
        minor = minor[~np.isin(minor, major)]
        for row in self.rows:
            row.grid.set_ticks(major, minor)

    # --- navigation -----------------------------------------------------------------------------------------------

    def x_range(self) -> tuple[float, float]:
        if not self.rows:
            return 0.0, 1.0
        x0, x1 = self.rows[0].plot.getViewBox().viewRange()[0]
        return float(x0), float(x1)

    def set_x_range(self, x0: float, x1: float) -> None:
        if self.rows:
            self.rows[0].plot.setXRange(x0, x1, padding=0)

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
        bottom = self.bottom_axis()
        if bottom is not None:
            bottom.set_mode(mode)
            self._update_caption()
            self._update_grid()
        if changed:
            self.axis_mode_changed.emit(mode)

    def bottom_axis(self) -> TimeAxis | None:
        """The one visible time axis: under the last row."""
        return self.rows[-1].plot.getAxis("bottom") if self.rows else None

    # --- amplitude ------------------------------------------------------------------------------------------------

    def _gain(self, row: _Row) -> float:
        if row.index is not None:
            return self.gains[row.index] if row.index < len(self.gains) else 1.0
        return row.gain

    def _label(self, row: _Row) -> str:
        """``BHU [m/s]``, with ``×4`` when the row's amplitude is zoomed; stacked (low rows) only ``U ×4``, the
        record's tag names the channel and the unit."""
        gain = self._gain(row)
        zoom = "" if gain == 1.0 else f" ×{gain:g}"
        if self.stacked:
            return f"{row.component}{zoom}"
        return f"{row.display.key.split('#')[0].split('.')[-1]}{row.component}{zoom} [{row.display.unit}]"

    def set_gain(self, row: int, gain: float) -> None:
        """Amplitude zoom of one row of the shown record: the row shows 1/gain of its visible data range, centred
        (1: fit)."""
        if not 0 <= row < len(self.gains):
            return
        self.gains[row] = _clamp_gain(gain)
        for r in self.rows:
            if r.index == row:
                r.plot.setLabel("left", self._label(r))
        self._apply_gains()

    def _set_row_gain(self, row: _Row, gain: float) -> None:
        if row.index is not None:
            self.set_gain(row.index, gain)
            return
        row.gain = _clamp_gain(gain)
        row.plot.setLabel("left", self._label(row))
        self._apply_gains()

    def scale_gain(self, factor: float, row: int | None = None) -> None:
        """Multiply the gain of one row of the shown record (None: every row, stacked ones too) by ``factor``."""
        if row is not None:
            if 0 <= row < len(self.gains):
                self.set_gain(row, self.gains[row] * factor)
            return
        for r in range(len(self.gains)):
            self.set_gain(r, self.gains[r] * factor)
        for other in self.rows:
            if other.index is None:
                self._set_row_gain(other, other.gain * factor)

    def reset_gain(self) -> None:
        for r in range(len(self.gains)):
            self.set_gain(r, 1.0)
        for other in self.rows:
            if other.index is None:
                self._set_row_gain(other, 1.0)

    def _apply_gains(self) -> None:
        """Each row's y range from the points it shows in the visible span: fitted at gain 1 (as pyqtgraph's auto
        range would, but set now rather than while painting, which painted every frame twice), 1/gain of it
        around the median otherwise."""
        x0, x1 = self.x_range()
        for row in self.rows:
            x, y = row.data
            shown = y[(x >= x0) & (x <= x1)]
            shown = shown[np.isfinite(shown)]
            if not shown.size:
                continue
            lo, hi = float(shown.min()), float(shown.max())
            vb = row.plot.getViewBox()
            gain = self._gain(row)
            if gain == 1.0:
                vb.setYRange(lo, hi)
                continue
            # centred on the median, so that a spike or a drift does not push the trace's body off the row
            mid = float(np.median(shown))
            half = max((hi - lo) / 2, 1e-30) / gain
            vb.setYRange(mid - half, mid + half, padding=0)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        """Shift+wheel over a row zooms that row's amplitude."""
        if (event.type() == QEvent.Type.Wheel and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
                and self.plots):
            row = self.row_under(self.graphics.mapToScene(event.position().toPoint()))
            if row is not None:
                delta = event.angleDelta().y() or event.angleDelta().x()
                self._set_row_gain(row, self._gain(row) * (1.25 if delta > 0 else 0.8))
                return True
        return super().eventFilter(obj, event)

    def row_at(self, scene_pos) -> int | None:
        """The row of the shown record (index in ``plots``) whose plot area holds a scene position."""
        row = self.row_under(scene_pos)
        return None if row is None else row.index

    def row_under(self, scene_pos) -> _Row | None:
        """The row (of any shown record) whose plot area holds a scene position."""
        for row in self.rows:
            if row.plot.getViewBox().sceneBoundingRect().contains(scene_pos):
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
        self._update_grid()
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


def _clamp_gain(gain: float) -> float:
    return float(min(max(gain, 1.0 / MAX_GAIN), MAX_GAIN))


def _rate(display: Display) -> float:
    seg = next(iter(display.traces.values())).segments[0]
    return 1.0 / seg.dt


def _band_text(band: tuple[float | None, float | None]) -> str:
    lo, hi = band
    if lo is not None and hi is not None:
        return f"{lo:g}–{hi:g} Hz"
    return f"> {lo:g} Hz" if lo is not None else f"< {hi:g} Hz"
