"""Annotations in the browser: in annotation mode (A) a drag on a row marks a span and a click marks a pick, labelled
with the text of the Annotations dock; the dock lists them (label editable, delete, double-click to go there) and
exports them (CSV, QuakeML, Snuffler markers). Stored in the project file (``unmix.gui.annotations``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from obspy import UTCDateTime
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import UnmixError
from unmix.gui.annotations import Annotation, parse_annotations, write_annotations

SPAN_BRUSH = (0, 150, 136, 60)
SPAN_PEN = "#00796b"
PICK_PEN = "#c2185b"
CLICK_PIXELS = 4  # a press and release closer than this is a click (a pick), else a drag (a span)
EXPORT_FILTERS = "CSV (*.csv);;QuakeML (*.xml);;Snuffler markers (*.markers)"


class AnnotationPanel(QWidget):
    """The dock's content: mode switch, label for new marks, the list, delete and export."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode_check = QCheckBox("Annotate (A)")
        self.mode_check.setToolTip("In the browser: drag on a row for a span, click for a pick")
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("label for new marks")
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Kind", "Start (UTC)", "Duration s", "Label", "Channel"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.delete_button = QPushButton("Delete")
        self.export_button = QPushButton("Export…")
        self.count_label = QLabel("no annotations")
        top = QHBoxLayout()
        top.addWidget(self.mode_check)
        top.addWidget(self.label_edit, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count_label, 1)
        bottom.addWidget(self.delete_button)
        bottom.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)


class AnnotationController(QObject):
    """Keeps the session's annotations, draws them on every row of the browser and turns mouse gestures into marks."""

    changed = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.annotations: list[Annotation] = []
        self.items: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []
        self.panel = AnnotationPanel()
        self._press: tuple[int, float, QPointF] | None = None
        self._preview: tuple[pg.PlotItem, pg.LinearRegionItem] | None = None
        self._filling = False
        waveform = window.waveform
        waveform.graphics.viewport().installEventFilter(self)
        waveform.annotate_requested.connect(self.toggle_mode)
        self.panel.mode_check.toggled.connect(self._mode_changed)
        self.panel.delete_button.clicked.connect(self.delete_selected)
        self.panel.export_button.clicked.connect(self.export_dialog)
        self.panel.table.itemChanged.connect(self._item_changed)
        self.panel.table.cellDoubleClicked.connect(lambda row, _c: self.go_to(row))
        window.display_shown.connect(lambda _key: self.redraw())
        window.filtered_shown.connect(lambda _band: self.redraw())

    # --- mode and gestures ----------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.panel.mode_check.isChecked()

    def toggle_mode(self) -> None:
        self.panel.mode_check.setChecked(not self.active)

    def _mode_changed(self, on: bool) -> None:
        waveform = self.window.waveform
        waveform.graphics.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
        self.window.statusBar().showMessage("Annotation mode: drag on a row for a span, click for a pick (A: leave)"
                                            if on else "Annotation mode off", 4000)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        """In annotation mode the left button marks instead of panning."""
        kind = event.type()
        if not self.active or kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                                           QEvent.Type.MouseButtonRelease):
            return super().eventFilter(obj, event)
        waveform = self.window.waveform
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            scene = waveform.graphics.mapToScene(event.position().toPoint())
            row = waveform.row_at(scene)
            if row is None:
                return False
            x = waveform.plots[row].getViewBox().mapSceneToView(scene).x()
            self._press = (row, x, event.position())
            return True
        if self._press is None:
            return False
        row, x0, pos0 = self._press
        plot = waveform.plots[row] if row < len(waveform.plots) else None
        if plot is None:
            self._press = None
            return False
        x = plot.getViewBox().mapSceneToView(waveform.graphics.mapToScene(event.position().toPoint())).x()
        moved = (event.position() - pos0).manhattanLength() >= CLICK_PIXELS
        if kind == QEvent.Type.MouseMove:
            if moved:
                if self._preview is None:
                    region = pg.LinearRegionItem((x0, x), movable=False, brush=SPAN_BRUSH, pen=pg.mkPen(SPAN_PEN))
                    plot.addItem(region, ignoreBounds=True)
                    self._preview = (plot, region)
                self._preview[1].setRegion((min(x0, x), max(x0, x)))
            return True
        self._press = None
        if self._preview is not None:
            self._preview[0].removeItem(self._preview[1])
            self._preview = None
        if event.button() != Qt.MouseButton.LeftButton:
            return True
        t_ref = waveform.display.t_ref
        if moved:
            self.add(Annotation("span", t_ref + min(x0, x), t_ref + max(x0, x), self.panel.label_edit.text(),
                                self._channel(row)))
        else:
            self.add(Annotation("pick", t_ref + x0, t_ref + x0, self.panel.label_edit.text(), self._channel(row)))
        return True

    def _channel(self, row: int) -> str:
        display = self.window.waveform.display
        return f"{display.key.split('#')[0]}{display.components[row]}"

    # --- list -----------------------------------------------------------------------------------------------------

    def add(self, annotation: Annotation) -> None:
        self.annotations.append(annotation)
        self.annotations.sort(key=lambda a: a.start)
        self._changed()

    def delete_selected(self) -> None:
        rows = sorted({i.row() for i in self.panel.table.selectedIndexes()}, reverse=True)
        for row in rows:
            del self.annotations[row]
        if rows:
            self._changed()

    def set_annotations(self, annotations: list[Annotation]) -> None:
        self.annotations = sorted(annotations, key=lambda a: a.start)
        self._changed()

    def _changed(self) -> None:
        self._fill_table()
        self.redraw()
        self.changed.emit()

    def _fill_table(self) -> None:
        table = self.panel.table
        self._filling = True
        table.setRowCount(len(self.annotations))
        for row, a in enumerate(self.annotations):
            cells = (a.kind, str(UTCDateTime(a.start))[:23], f"{a.end - a.start:.2f}", a.label, a.channel)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col != 3:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                table.setItem(row, col, item)
        self._filling = False
        n = len(self.annotations)
        self.panel.count_label.setText(f"{n} annotation{'s' if n != 1 else ''}" if n else "no annotations")

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 3 or item.row() >= len(self.annotations):
            return
        self.annotations[item.row()] = replace(self.annotations[item.row()], label=item.text()[:256])
        self.redraw()
        self.changed.emit()

    def go_to(self, row: int) -> None:
        """Centre the browser on an annotation (a pick with a minute around it)."""
        waveform = self.window.waveform
        if waveform.display is None or not 0 <= row < len(self.annotations):
            return
        a = self.annotations[row]
        width = max((a.end - a.start) * 3, 60.0)
        mid = (a.start + a.end) / 2 - waveform.display.t_ref
        waveform.set_x_range(mid - width / 2, mid + width / 2)

    # --- drawing --------------------------------------------------------------------------------------------------

    def redraw(self) -> None:
        for plot, item in self.items:
            plot.removeItem(item)
        self.items = []
        waveform = self.window.waveform
        if waveform.display is None or not waveform.plots:
            return
        t_ref = waveform.display.t_ref
        channels = [self._channel(r) for r in range(len(waveform.plots))]
        for a in self.annotations:
            x0, x1 = a.start - t_ref, a.end - t_ref
            for row, plot in enumerate(waveform.plots):
                own = a.channel in ("", channels[row])
                if a.kind == "span":
                    item = pg.LinearRegionItem((x0, x1), movable=False, brush=SPAN_BRUSH if own else (0, 150, 136, 25),
                                               pen=pg.mkPen(SPAN_PEN, width=1))
                else:
                    item = pg.InfiniteLine(x0, angle=90, movable=False,
                                           pen=pg.mkPen(PICK_PEN, width=2 if own else 1,
                                                        style=Qt.PenStyle.SolidLine if own else Qt.PenStyle.DashLine))
                plot.addItem(item, ignoreBounds=True)
                self.items.append((plot, item))
                if own and a.label:
                    text = pg.TextItem(a.label, color=PICK_PEN if a.kind == "pick" else SPAN_PEN, anchor=(0, 0))
                    text.setPos(x0, plot.getViewBox().viewRange()[1][1])
                    plot.addItem(text, ignoreBounds=True)
                    self.items.append((plot, text))

    # --- files ----------------------------------------------------------------------------------------------------

    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        return write_annotations(self.annotations, path, fmt)

    def export_dialog(self) -> None:
        if not self.annotations:
            self.window.statusBar().showMessage("No annotations to export", 4000)
            return
        path, chosen = QFileDialog.getSaveFileName(self.panel, "Export annotations", "annotations.csv",
                                                   EXPORT_FILTERS)
        if not path:
            return
        suffix = {"CSV": ".csv", "QuakeML": ".xml", "Snuffler": ".markers"}[chosen.split()[0]]
        if Path(path).suffix.lower() not in (".csv", ".xml", ".qml", ".quakeml", ".markers", ".pf"):
            path += suffix
        try:
            written = self.export(path)
        except (UnmixError, OSError) as exc:
            from unmix.gui.views.dialogs import show_error

            show_error(self.window, "Cannot export the annotations", getattr(exc, "message", str(exc)))
            return
        self.window.statusBar().showMessage(f"{len(self.annotations)} annotations written to {written}", 5000)

    def project_annotations(self) -> list[dict]:
        return [a.to_json() for a in self.annotations]

    def restore(self, stored: list[dict]) -> None:
        self.set_annotations(parse_annotations(stored))

    def clear(self) -> None:
        self.set_annotations([])
