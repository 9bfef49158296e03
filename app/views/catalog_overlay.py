"""Catalogue overlays on the waveform browser: each catalogued event as a span with a line at its onset, one colour
per kind, toggleable per kind, with a legend, class/quality filters, and hits/misses against the chosen clusters'
windows (the computation is in :mod:`unmix.gui.catalog_layers`)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QPainter, QPen, QPicture
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from unmix.catalogs import Catalog, seed_mismatch
from unmix.errors import UnmixError
from unmix.gui.catalog_layers import (
    HIT,
    HIT_COLOUR,
    MISS,
    MISS_COLOUR,
    OUTSIDE_COLOUR,
    CatalogLayer,
    CatalogSelection,
    HitSummary,
    best_cluster,
    hit_summary,
    load_catalogs,
)
from unmix.gui.registry import JobRequest
from unmix.gui.views.occupancy import FullHeightSpans

CATALOG_FILTER = ("Catalogues (*.txt *.xml *.qml *.quakeml *.markers *.pf *.json);;All files (*)")
SPAN_ALPHA = 45


class CatalogItem(FullHeightSpans):
    """Catalogue entries in data x (browser seconds): a translucent span and an onset line each; with a hit/miss
    status the onset line is green (hit), red and dashed (miss) or grey (no window there)."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, colours: list[str],
                 status: np.ndarray | None = None) -> None:
        super().__init__()
        order = np.argsort(starts)
        self.starts = np.asarray(starts, dtype=float)[order]
        self.ends = np.maximum(np.asarray(ends, dtype=float)[order], self.starts)
        self.colours = [colours[i] for i in order]
        self.status = None if status is None else np.asarray(status)[order]
        self.setZValue(-15)  # above the cluster spans (-20), below the traces
        self._picture: QPicture | None = None
        self._key: tuple = ()

    def paint(self, painter: QPainter, *_args) -> None:
        vb = self.getViewBox()
        (x0, x1), _ = vb.viewRange() if vb is not None else ((-np.inf, np.inf), None)
        y = self._view_y()
        key = (y, x0, x1)
        if self._picture is None or key != self._key:
            self._key = key
            self._picture = QPicture()
            p = QPainter(self._picture)
            # only the entries in view: a year of glitch lists has tens of thousands
            i1 = int(np.searchsorted(self.starts, x1, side="right"))
            for i in range(i1):
                a, b = float(self.starts[i]), float(self.ends[i])
                if b < x0:
                    continue
                colour = QColor(self.colours[i])
                fill = QColor(colour)
                fill.setAlpha(SPAN_ALPHA)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(fill)
                p.drawRect(QRectF(a, y[0], b - a, y[1] - y[0]))
                pen = QPen(colour, 1.5)
                if self.status is not None:
                    st = int(self.status[i])
                    pen = QPen(QColor(HIT_COLOUR if st == HIT else MISS_COLOUR if st == MISS else OUTSIDE_COLOUR),
                               2.5, Qt.PenStyle.SolidLine if st == HIT else Qt.PenStyle.DashLine)
                pen.setCosmetic(True)
                p.setPen(pen)
                p.drawLine(QPointF(a, y[0]), QPointF(a, y[1]))
            p.end()
        self._picture.play(painter)


class CatalogBar(QWidget):
    """Toggle, per-kind legend check boxes, filter menu, and the hits/misses controls with their summary."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QCheckBox("Catalogues")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Show the loaded catalogues' events on the traces")
        self.kinds_row = QHBoxLayout()
        self.kinds_row.setSpacing(6)
        self.kind_checks: dict[str, QCheckBox] = {}
        self.filter_button = QToolButton()
        self.filter_button.setText("Filter")
        self.filter_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.filter_button.setToolTip("Show only events of the chosen classes / qualities")
        self.filter_menu = QMenu(self.filter_button)
        self.filter_button.setMenu(self.filter_menu)
        self.filter_actions: dict[tuple[str, str], QAction] = {}
        self.hits_check = QCheckBox("Hits vs clusters")
        self.hits_check.setToolTip("Mark each event as a hit (green: its onset is in a window of the chosen clusters at"
                                   " the scale shown), a miss (red, dashed) or outside every window (grey)")
        self.clusters_edit = QLineEdit()
        self.clusters_edit.setPlaceholderText("best")
        self.clusters_edit.setMaximumWidth(90)
        self.clusters_edit.setToolTip("Clusters to compare with: numbers or names, comma-separated; empty: the cluster "
                                      "that best matches the catalogue")
        self.warning = QLabel("⚠ other SEED id")
        self.warning.setStyleSheet(f"color: {MISS_COLOUR}")
        self.warning.hide()
        self.summary = QLabel("")
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.toggle)
        row.addLayout(self.kinds_row)
        row.addWidget(self.filter_button)
        row.addWidget(self.warning)
        row.addSpacing(8)
        row.addWidget(self.hits_check)
        row.addWidget(self.clusters_edit)
        row.addWidget(self.summary, 1)
        for w in (self.toggle, self.filter_button, self.hits_check):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.toggle.toggled.connect(lambda _c: self.changed.emit())
        self.hits_check.toggled.connect(lambda _c: self.changed.emit())
        self.clusters_edit.editingFinished.connect(self.changed.emit)

    def set_kinds(self, counts: dict[str, int], colours: dict[str, str], hidden: set[str]) -> None:
        """One check box per kind: its colour chip, name and number of (filtered) entries."""
        for check in self.kind_checks.values():
            self.kinds_row.removeWidget(check)
            check.deleteLater()
        self.kind_checks = {}
        for kind, n in counts.items():
            check = QCheckBox(f"{kind} ({n})")
            check.setChecked(kind not in hidden)
            check.setStyleSheet(f"QCheckBox {{ color: {colours[kind]}; font-weight: bold; }}")
            check.setToolTip(f"show the {html.escape(kind)} entries ({n})")
            check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            check.toggled.connect(lambda _c: self.changed.emit())
            self.kinds_row.addWidget(check)
            self.kind_checks[kind] = check

    def hidden_kinds(self) -> set[str]:
        return {k for k, c in self.kind_checks.items() if not c.isChecked()}

    def set_fields(self, fields: dict[str, list[str]], filters: dict[str, set[str]]) -> None:
        """Checkable values of each filter field (all checked: no filter on that field)."""
        self.filter_menu.clear()
        self.filter_actions = {}
        for name, values in fields.items():
            self.filter_menu.addSection(name)
            for value in values:
                action = self.filter_menu.addAction(value or "(none)")
                action.setCheckable(True)
                action.setChecked(name not in filters or value in filters[name])
                action.toggled.connect(lambda _c: self.changed.emit())
                self.filter_actions[(name, value)] = action
        self.filter_button.setVisible(bool(fields))

    def filters(self) -> dict[str, set[str]]:
        """Field → checked values, for the fields where some value is unchecked."""
        checked: dict[str, set[str]] = {}
        every: dict[str, int] = {}
        for (name, value), action in self.filter_actions.items():
            every[name] = every.get(name, 0) + 1
            if action.isChecked():
                checked.setdefault(name, set()).add(value)
        return {name: checked.get(name, set()) for name, n in every.items() if len(checked.get(name, ())) < n}


class CatalogController(QObject):
    """Loads catalogues (a job), draws them on every row of the browser, warns when their SEED ids do not match
    the record, and compares them with the cluster spans shown; remembers the files in the project."""

    drawn = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.selection = CatalogSelection()
        self.items: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []
        self.status: np.ndarray | None = None
        self.summary: HitSummary | None = None
        self.warning: str | None = None
        self.bar = CatalogBar()
        self.bar.hide()
        layout = window.waveform.layout()
        layout.insertWidget(min(2, layout.count() - 1), self.bar)
        self.bar.changed.connect(self._bar_changed)
        window.display_shown.connect(lambda _key: self._record_changed())
        window.filtered_shown.connect(lambda _band: self.redraw())
        results = getattr(window, "results", None)
        if results is not None:
            results.table_shown.connect(self.redraw)
            results.bar.changed.connect(lambda _v, _s: self.redraw())
            results.names_changed.connect(self.redraw)

    # --- loading --------------------------------------------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return self.selection.paths

    def open_dialog(self) -> None:
        prefs = self.window.preferences
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Open catalogues (glitch lists, QuakeML, markers, "
                                                "truth.json)", prefs.last_dir, CATALOG_FILTER)
        if paths:
            self.open(paths)

    def open(self, paths: list[str]):
        """Read ``paths`` in a job and overlay them (a file already loaded is reloaded)."""
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return None
        return self.window.jobs.start(JobRequest("Open catalogues", load_catalogs, {"paths": paths},
                                                 lambda _w, layers: self.add(layers)))

    def add(self, layers: list[CatalogLayer]) -> None:
        self.selection.add(layers)
        self.selection.visible = True
        self.bar.toggle.blockSignals(True)
        self.bar.toggle.setChecked(True)
        self.bar.toggle.blockSignals(False)
        for layer in layers:
            self.window.jobs.append_log(f"  {layer.name}: {len(layer.catalog)} entries")
        self._refresh_bar()
        self._record_changed()

    def clear(self) -> None:
        self.selection.clear()
        self._remove_items()
        self.status = self.summary = self.warning = None
        self.bar.hide()

    def _refresh_bar(self) -> None:
        sel = self.selection
        if not sel.layers:
            self.bar.hide()
            return
        self.bar.blockSignals(True)
        sel.filters = {k: v for k, v in sel.filters.items() if k in sel.fields()}
        self.bar.set_fields(sel.fields(), sel.filters)
        self.bar.set_kinds(sel.kind_counts(), {k: sel.colour(k) for k in sel.kinds()}, sel.hidden_kinds)
        self.bar.blockSignals(False)
        self.bar.show()

    def _bar_changed(self) -> None:
        sel = self.selection
        sel.visible = self.bar.toggle.isChecked()
        sel.hidden_kinds = self.bar.hidden_kinds()
        filters = self.bar.filters()
        if filters != sel.filters:
            sel.filters = filters
            self._refresh_bar()
        self.redraw()

    # --- checks ---------------------------------------------------------------------------------------------------

    def _record_changed(self) -> None:
        self.warning = self.check_seed()
        self.bar.warning.setVisible(bool(self.warning))
        self.bar.warning.setToolTip(self.warning or "")
        if self.warning:
            # after the job's own "done" line, which would replace it
            QTimer.singleShot(0, lambda w=self.warning: self.window.statusBar().showMessage(f"Warning: {w}", 15000))
        self.redraw()

    def check_seed(self) -> str | None:
        """One line when a loaded catalogue is for another instrument than the record shown (None: they match)."""
        key = self.window.current_key
        records = self.window.records.get(key or "", [])
        ids = sorted({tr.id for rec in records for tr in rec.stream})
        if not ids:
            return None
        lines = [w for layer in self.selection.layers if (w := seed_mismatch(Catalog(list(layer.catalog),
                                                                                      layer.name), ids))]
        return "; ".join(lines) or None

    # --- drawing --------------------------------------------------------------------------------------------------

    def _remove_items(self) -> None:
        plots = self.window.waveform.plots
        for plot, item in self.items:
            if plot in plots:
                plot.removeItem(item)
        self.items = []

    def _windows_of_record(self, table) -> np.ndarray | None:
        """The table's windows in the record shown (the clusters bar's rule: never every window of the table)."""
        from unmix.gui.views.occupancy import record_windows

        display = self.window.waveform.display
        return None if display is None else record_windows(table, display)

    def compare(self, entries) -> tuple[np.ndarray | None, HitSummary | None]:
        """Hit/miss status of ``entries`` against the chosen clusters at the scale of the cluster spans shown; the
        summary goes to the bar. (None, None) without a table or with hits/misses off."""
        results = getattr(self.window, "results", None)
        table = results.table if results is not None else None
        if not self.bar.hits_check.isChecked() or table is None:
            self.bar.summary.setText("")
            return None, None
        scale = results.overlay.scale or table.scales[0]
        text = self.bar.clusters_edit.text().strip()
        try:
            clusters = table.resolve(text, scale) if text else []
        except UnmixError as exc:
            self.bar.summary.setText(f"<span style='color:{MISS_COLOUR}'>{html.escape(exc.message)}</span>")
            return None, None
        if not clusters:
            best = best_cluster(table, entries, scale)
            clusters = [] if best is None else [best]
        if not clusters:
            self.bar.summary.setText("no catalogued event falls in a window of this table")
            return None, None
        status, summary = hit_summary(table, entries, scale, clusters, self._windows_of_record(table))
        text = summary.text(lambda k: table.label(scale, k))
        self.bar.summary.setText(html.escape(text))
        self.bar.summary.setToolTip(text)
        return status, summary

    def redraw(self) -> None:
        """Draw the shown entries on every row of the browser (call after the browser rebuilt its plots)."""
        self._remove_items()
        waveform = self.window.waveform
        entries = self.selection.shown()
        self.status, self.summary = self.compare(entries) if entries else (None, None)
        if not entries or waveform.display is None or not waveform.plots:
            self.drawn.emit()
            return
        t_ref = waveform.display.t_ref
        starts = np.array([e.start.timestamp for e in entries]) - t_ref
        ends = np.array([e.end.timestamp for e in entries]) - t_ref
        colours = [self.selection.colour(e.kind) for e in entries]
        for plot in waveform.plots:
            item = CatalogItem(starts, ends, colours, self.status)
            plot.addItem(item, ignoreBounds=True)
            self.items.append((plot, item))
        self.drawn.emit()

    # --- project --------------------------------------------------------------------------------------------------

    def project_parameters(self) -> dict[str, list[str]]:
        """What the project file keeps: the catalogue files and the hidden kinds (flat lists of strings)."""
        if not self.selection.layers:
            return {}
        return {"catalogs": self.paths, "catalog_hidden": sorted(self.selection.hidden_kinds)}

    def restore(self, parameters: dict) -> None:
        """Reopen the catalogues a project names (in a job), with its hidden kinds."""
        self.clear()
        self.selection.hidden_kinds = set(parameters.get("catalog_hidden") or [])
        paths = list(parameters.get("catalogs") or [])
        if paths:
            self.open(paths)
