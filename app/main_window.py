"""Main window: docks, menus and the session state (loaded records, project); views and workers do the rest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QWidget

from unmix import __version__
from unmix.errors import UnmixError
from unmix.gui.appicon import app_icon
from unmix.gui.display import Display, display_spectrogram, spectrogram_window
from unmix.gui.export_figure import install_export_menu
from unmix.gui.panels.results import PIPELINE_KEYS, ResultsController
from unmix.gui.project import SUFFIX, Project
from unmix.gui.settings import Preferences
from unmix.gui.tasks import Loaded, claim_key
from unmix.gui.units import Conversion, build_view
from unmix.gui.views.annotations import AnnotationController
from unmix.gui.views.catalog_overlay import CatalogController
from unmix.gui.views.dialogs import SettingsDialog, ShortcutsDialog, show_error
from unmix.gui.views.forms import load_request, synthetic_request
from unmix.gui.views.jobs import JobPanel
from unmix.gui.views.records import RecordList
from unmix.gui.views.spectrogram import SpectrogramView
from unmix.gui.views.units import UnitsBar
from unmix.gui.views.waveform import WaveformView
from unmix.gui.workers import Worker, cancel_all
from unmix.io import Record
from unmix.mars_time import format_lmst

PROJECT_FILTER = f"Unmix project (*{SUFFIX} *.json)"


class MainWindow(QMainWindow):
    """Owns the session: what was loaded (records + display data), the project, and the background computations."""

    display_shown = Signal(str)
    spectrogram_shown = Signal(str)
    filtered_shown = Signal(object)

    def __init__(self, preferences: Preferences | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preferences = preferences or Preferences()
        self.project = Project()
        self.loaded: list[Loaded] = []
        self.records: dict[str, list[Record]] = {}
        self.displays: dict[str, Display] = {}
        self.filtered: dict[tuple[str, Any], Display] = {}
        # (key, component) → (window length in s, (x0, x1) covered, tiles); recomputed when the zoom asks for
        # another window length or pans outside the covered span
        self.spectrograms: dict[tuple[str, str], tuple[float, tuple[float, float], list]] = {}
        self.spectrogram_sources: dict[tuple[str, str], Display] = {}  # the display each cached entry comes from
        self.current_key: str | None = None
        self._background: dict[str, Worker] = {}
        self.setWindowTitle(f"Unmix {__version__}")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        screen = QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        # 1400×900 where it fits, else the screen (a 1366×768 laptop): the window's minimum is well below that
        self.resize(min(1400, available.width()) if available else 1400, min(900, available.height()) if available
                    else 900)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        self.waveform = WaveformView()
        self.waveform.set_axis_mode(self.preferences.axis_mode)
        self.waveform.filter_requested.connect(self._filter_requested)
        self.waveform.filter_invalid.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.units = UnitsBar()
        self.waveform.layout().insertWidget(1, self.units)
        self.units.changed.connect(lambda _c: self._filter_requested(self.waveform.band()))
        self.units.gain_requested.connect(lambda f: self.waveform.scale_gain(f) if f != 1.0
                                          else self.waveform.reset_gain())
        self.waveform.axis_mode_changed.connect(self._axis_mode_changed)
        self.waveform.range_changed.connect(self._range_changed)
        self._spectrogram_timer = QTimer(self)
        self._spectrogram_timer.setSingleShot(True)
        self._spectrogram_timer.setInterval(250)  # debounce: recompute once the user stops zooming
        self._spectrogram_timer.timeout.connect(self._request_spectrogram)
        self.setCentralWidget(self.waveform)

        self.record_list = RecordList()
        self.record_list.selected.connect(self.show_key)
        self.records_dock = self._dock("Records", self.record_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.record_list.setMinimumWidth(200)
        self.spectrogram = SpectrogramView()
        self.spectrogram.component_changed.connect(lambda _c: self._request_spectrogram())
        self.spectrogram_dock = self._dock("Spectrogram", self.spectrogram, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.jobs = JobPanel(self)
        self.jobs.job_failed.connect(self._job_failed)
        self.jobs.job_started.connect(lambda t: self.statusBar().showMessage(f"{t}…"))
        self.jobs.job_finished.connect(lambda t, _r: self.statusBar().showMessage(f"{t}: done", 5000))
        self.jobs.job_cancelled.connect(lambda t: self.statusBar().showMessage(f"{t}: cancelled", 5000))
        self.jobs_dock = self._dock("Pipeline", self.jobs, Qt.DockWidgetArea.RightDockWidgetArea)
        self.jobs.setMinimumWidth(260)
        self.results = ResultsController(self)
        self.results_dock = self._dock("Results", self.results.panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.catalogs = CatalogController(self)
        self.annotations = AnnotationController(self)
        self.annotations_dock = self._dock("Annotations", self.annotations.panel,
                                           Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.spectrogram_dock, self.annotations_dock)
        self.tabifyDockWidget(self.spectrogram_dock, self.results_dock)
        self.spectrogram_dock.raise_()

        self.span_label = QLabel("")
        self.device_label = QLabel("")
        self.statusBar().addPermanentWidget(self.span_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self._build_menus()
        self.update_device_label()
        self._docks_sized = False

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            side = max(240, min(340, int(self.width() * 0.22)))  # leave the traces most of a small screen
            self.resizeDocks([self.records_dock, self.jobs_dock], [side, side], Qt.Orientation.Horizontal)
            self.resizeDocks([self.spectrogram_dock], [320], Qt.Orientation.Vertical)

    # --- construction ---------------------------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text: str, slot, shortcut: QKeySequence | str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "&Open files…", self.open_files_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open &folder…", self.open_folder_dialog, "Ctrl+Shift+D")
        self._action(file, "&Fetch data (FDSN)…", self.open_fetch_dialog, "Ctrl+Shift+F")
        self._action(file, "Open &catalogues…", self.catalogs.open_dialog, "Ctrl+Shift+K")
        self._action(file, "Open cluster &table…", self.open_table_dialog, "Ctrl+Shift+T")
        self._action(file, "Remove catalogues", self.catalogs.clear)
        self.recent_menu = file.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        self._action(file, "Open &project…", self.open_project_dialog, "Ctrl+Shift+O")
        self._action(file, "&Save project", self.save_project, QKeySequence.StandardKey.Save)
        self._action(file, "Save project &as…", self.save_project_as, QKeySequence.StandardKey.SaveAs)
        file.addSeparator()
        self.export_menu = install_export_menu(self, file)
        file.addSeparator()
        self._action(file, "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        jobs = bar.addMenu("&Jobs")
        self._action(jobs, "&Generate synthetic record…", lambda: self._show_job("synthetic"), "Ctrl+G")
        self._action(jobs, "&Load files…", lambda: self._show_job("load"))
        jobs.addSeparator()
        for n, key in enumerate(PIPELINE_KEYS, start=1):
            self._action(jobs, f"{key.capitalize()}…", lambda _c=False, k=key: self._show_job(k), f"Ctrl+{n}")
        self._action(jobs, "E&xport separated sources…", self.results.open_export_dialog, "Ctrl+E")
        self._action(jobs, "Cluster &names…", self.results.open_names_dialog)
        self._action(jobs, "Co&mpare cluster tables…", self.results.open_compare_dialog)
        self._action(jobs, "Generate from a clus&ter…", self.results.open_generate_dialog)
        jobs.addSeparator()
        self._action(jobs, "&Cancel running job", self.jobs.cancel, "Ctrl+.")
        view = bar.addMenu("&View")
        for dock in (self.records_dock, self.spectrogram_dock, self.jobs_dock, self.results_dock,
                     self.annotations_dock):
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        self._action(view, "Cycle time axis (UTC / LMST / relative)", self.waveform.cycle_axis_mode)
        self._action(view, "Show whole record", self.waveform.reset)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", lambda: ShortcutsDialog(self).exec(), "F1")
        self._action(help_menu, "&About Unmix", self._about)

    def _show_job(self, key: str) -> None:
        self.jobs_dock.show()
        self.jobs_dock.raise_()
        self.jobs.select(key)

    # --- opening --------------------------------------------------------------------------------------------------

    def ask_files(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open waveform files", self.preferences.last_dir,
                                                "Waveforms (*.mseed *.miniseed *.sac *.SAC *);;All files (*)")
        return paths

    def ask_folder(self) -> list[str]:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of waveforms", self.preferences.last_dir)
        return [path] if path else []

    def open_files_dialog(self) -> None:
        self.open_paths(self.ask_files())

    def open_folder_dialog(self) -> None:
        self.open_paths(self.ask_folder())

    def open_table_dialog(self) -> None:
        """Open a cluster table written by ``unmix cluster`` (read in a job; its views fill as they are ready)."""
        path, _ = QFileDialog.getOpenFileName(self, "Open a cluster table", self.preferences.last_dir,
                                              "Cluster tables (*.h5 *.hdf5);;All files (*)")
        if path:
            self.preferences.last_dir = str(Path(path).resolve().parent)
            self.results.open_table(path)

    def open_fetch_dialog(self) -> QWidget:
        """The "Fetch data" dialog (FDSN download run as a job; the fetched files open in the browser)."""
        from unmix.gui.dialogs.fetch import FetchDialog

        return FetchDialog.open_for(self)

    def open_paths(self, paths: list[str]) -> None:
        """Open files or folders in a worker; a project file among them is opened as a project instead."""
        paths = [os.path.abspath(os.path.expanduser(str(p))) for p in paths if str(p)]
        projects = [p for p in paths if p.endswith(SUFFIX)]
        if projects:
            self.open_project(projects[0])
            return
        if not paths:
            return
        for p in paths:
            self.preferences.add_recent(str(Path(p).resolve()))
        self.preferences.last_dir = str(Path(paths[0]).resolve().parent)
        self.jobs.start(load_request(paths))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.preferences.recent_files
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_paths([p]))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list").triggered.connect(self.preferences.clear_recent)

    def generate_synthetic(self, **kwargs: Any) -> Worker | None:
        """Start the synthetic-record job with ``unmix.synthetic`` parameters (sols, hours, seed, gaps, start_sol)."""
        return self.jobs.start(synthetic_request(**kwargs))

    def add_loaded(self, loaded: Loaded) -> None:
        """Take a job's records into the session and show the first new instrument."""
        self.loaded.append(loaded)
        if loaded.inputs:
            self.project.inputs += [i for i in loaded.inputs if i not in self.project.inputs]
            if not loaded.restored:
                self.project.loads.append(list(loaded.inputs))
        if loaded.synthetic is not None and loaded.synthetic not in self.project.synthetic:
            self.project.synthetic.append(loaded.synthetic)
        new_keys = []
        for display in loaded.displays.values():
            claim_key(display, loaded.records, self.displays)
            self.displays[display.key] = display
            self.records[display.key] = [r for r in loaded.records if r.key == display.key]
            new_keys.append(display.key)
        self.waveform.set_records(self.displays)
        self.record_list.add_records(loaded.label, loaded.records, {k: self.displays[k].t_ref for k in new_keys})
        if new_keys:
            self.record_list.select_key(new_keys[0])

    # --- showing --------------------------------------------------------------------------------------------------

    def show_key(self, key: str, span: tuple[float, float] | None = None) -> None:
        """Show one instrument in the browser (filtered if the filter is on) and its spectrogram."""
        if key not in self.displays:
            return
        if key != self.current_key:
            self.current_key = key
            display = self.displays[key]
            band, conv = self.waveform.band(), self.units.conversion()
            converted = band is not None or not conv.identity
            self.waveform.set_display(self.filtered.get((key, band, conv), display) if converted else display)
            self.spectrogram.set_reference(display.t_ref, self.waveform.axis_mode)
            self.spectrogram.set_x_range(*self.waveform.x_range())
            self.spectrogram.set_components(display.components, self.spectrogram.component() or None)
            self._update_span_label()
            if converted and (key, band, conv) not in self.filtered:
                self._filter_requested(band)
            self._request_spectrogram()
            self.display_shown.emit(key)
        if span is not None:
            self.waveform.set_x_range(*span)

    def _update_span_label(self) -> None:
        records = self.records.get(self.current_key or "", [])
        if not records:
            self.span_label.setText("")
            return
        t0, t1 = records[0].starttime, records[-1].endtime
        self.span_label.setText(
            f"UTC {t0.strftime('%Y-%m-%d %H:%M:%S')} – {t1.strftime('%Y-%m-%d %H:%M:%S')}   "
            f"LMST {format_lmst(t0)} – {format_lmst(t1)}"
        )

    def update_device_label(self) -> None:
        choice = self.preferences.device
        self.device_label.setText(f"Device: {self.preferences.effective_device()}"
                                  + (" (auto)" if choice == "auto" else ""))

    def _run_background(self, kind: str, fn, on_result, on_failed=None, **kwargs: Any) -> Worker:
        """Run a view computation (filter, spectrogram); a newer request of the same kind supersedes the older."""
        old = self._background.get(kind)
        if old is not None:
            old.cancel()
        worker = Worker(fn, title=kind, **kwargs)
        self._background[kind] = worker

        def finished(result: object) -> None:
            if shiboken6.isValid(self) and self._background.get(kind) is worker:  # not after the window is gone
                on_result(result)

        def done() -> None:
            if self._background.get(kind) is worker:
                del self._background[kind]

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(lambda m, d: self._job_failed(kind, m, d))
        if on_failed is not None:
            worker.signals.failed.connect(lambda _m, _d: on_failed())
        worker.signals.done.connect(done)
        return worker.start()

    def _filter_requested(self, band: tuple[float | None, float | None] | None) -> None:
        key = self.current_key
        if key is None:
            return
        conv: Conversion = self.units.conversion()
        if band is None and conv.identity:
            self.waveform.set_display(self.displays[key], keep_range=True)
            self.filtered_shown.emit(None)
            self._request_spectrogram()
            return
        if (key, band, conv) in self.filtered:
            self.waveform.set_display(self.filtered[(key, band, conv)], keep_range=True)
            self.filtered_shown.emit(band)
            self._request_spectrogram()
            return
        self.statusBar().showMessage("Filtering…" if conv.identity else f"Converting to {conv.describe()}…")

        def apply(display: Display) -> None:
            self.filtered[(key, band, conv)] = display
            if self.current_key == key and self.waveform.band() == band and self.units.conversion() == conv:
                self.waveform.set_display(display, keep_range=True)
                self.statusBar().clearMessage()
                self.filtered_shown.emit(band)
                self._request_spectrogram()

        def failed() -> None:  # e.g. the response file does not cover the record: back to counts, said once
            if conv != Conversion() and self.units.conversion() == conv:
                self.units.set_conversion("COUNTS", conv.response)

        self._run_background("filter", build_view, apply, on_failed=failed, records=self.records[key],
                             t_ref=self.displays[key].t_ref, band=band, conversion=conv)

    def _range_changed(self, x0: float, x1: float) -> None:
        self.spectrogram.set_x_range(x0, x1)
        if self.current_key is not None:
            self._spectrogram_timer.start()

    def spectrogram_request(self) -> tuple[float, tuple[float, float]] | None:
        """Window length (s) for the browser's visible span, and the span to compute (the visible one, one span
        either side, within the record)."""
        key = self.current_key
        if key is None or not self.records.get(key):
            return None
        x0, x1 = self.waveform.x_range()
        lo, hi = self.displays[key].span
        width = x1 - x0
        window_s = spectrogram_window(min(width, hi - lo), self.records[key][0].sampling_rate)
        return window_s, (max(x0 - width, lo), min(x1 + width, hi))

    def _shown_display(self, key: str) -> Display | None:
        """What the browser draws for ``key``: converted to the chosen units and filtered (None while computing)."""
        band, conv = self.waveform.band(), self.units.conversion()
        if band is None and conv.identity:
            return self.displays[key]
        return self.filtered.get((key, band, conv))

    def _request_spectrogram(self) -> None:
        """Show the spectrogram of the visible span, computed in a worker with a window chosen from the span, from
        the samples the browser draws (its units and filter: ``display_spectrogram``)."""
        key, comp = self.current_key, self.spectrogram.component()
        wanted = self.spectrogram_request()
        if key is None or not comp or wanted is None:
            return
        source = self._shown_display(key)
        if source is None:  # the conversion or filter is still running; its result asks again
            self.spectrogram.clear("waiting for the converted or filtered record…")
            return
        window_s, cover = wanted
        x0, x1 = self.waveform.x_range()
        lo, hi = self.displays[key].span
        label = f"{key}{comp}   window {window_s:g} s"
        cached = self.spectrograms.get((key, comp)) if self.spectrogram_sources.get((key, comp)) is source else None
        if cached is not None:
            c_window, (c0, c1), tiles = cached
            if c_window == window_s and c0 <= max(x0, lo) + 1e-6 and c1 >= min(x1, hi) - 1e-6:
                if self.spectrogram.images and self.spectrogram.shown == (key, comp, c_window, c0, c1, id(source)):
                    return
                self.spectrogram.set_tiles(tiles, label)
                self.spectrogram.shown = (key, comp, c_window, c0, c1, id(source))
                self.spectrogram_shown.emit(comp)
                return
        if self.spectrogram.images and self.spectrogram.shown[:2] == (key, comp):
            self.spectrogram.set_status(f"{key}{comp}   recomputing with a {window_s:g} s window…")
        else:
            self.spectrogram.clear("computing…")

        def apply(tiles: list) -> None:
            self.spectrograms[(key, comp)] = (window_s, cover, tiles)
            self.spectrogram_sources[(key, comp)] = source
            if self.current_key == key and self.spectrogram.component() == comp:
                self._request_spectrogram()

        self._run_background("spectrogram", display_spectrogram, apply, display=source, component=comp,
                             window_s=window_s, x_range=cover, max_columns=1500)

    def _axis_mode_changed(self, mode: str) -> None:
        self.preferences.axis_mode = mode
        self.spectrogram.set_axis_mode(mode)

    # --- project --------------------------------------------------------------------------------------------------

    def current_project(self) -> Project:
        """The project as it stands: inputs, synthetic records and view parameters."""
        project = self.project
        project.parameters.update({
            "axis_mode": self.waveform.axis_mode,
            "filter": self.waveform.filter_preset(),
            "selected": self.current_key,
            "pipeline": self.results.form_values(),
            "stacked": self.waveform.stack_check.isChecked(),
        })
        for key in ("catalogs", "catalog_hidden", "units", "response", "rotate"):
            project.parameters.pop(key, None)
        project.parameters.update(self.catalogs.project_parameters())
        project.parameters.update(self.units.project_parameters())
        project.annotations = self.annotations.project_annotations()
        return project

    def save_project(self) -> Path | None:
        if self.project.path is None:
            return self.save_project_as()
        return self._write_project(self.project.path)

    def save_project_as(self) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save project", self.preferences.last_dir, PROJECT_FILTER)
        if not path:
            return None
        if not path.endswith(SUFFIX):
            path = str(Path(path).with_suffix("")) + SUFFIX
        return self._write_project(Path(path))

    def _write_project(self, path: Path) -> Path | None:
        try:
            written = self.current_project().save(path)
        except (UnmixError, OSError) as exc:
            show_error(self, "Cannot save the project", getattr(exc, "message", str(exc)))
            return None
        self.preferences.add_recent(str(written.resolve()))
        self.statusBar().showMessage(f"Project saved to {written}", 5000)
        self.setWindowTitle(f"Unmix {__version__} — {written.name}")
        return written

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", self.preferences.last_dir, PROJECT_FILTER)
        if path:
            self.open_project(path)

    def open_project(self, path: str | os.PathLike) -> Project | None:
        """Replace the session with a project's: its inputs and synthetic records are (re)loaded by jobs."""
        try:
            project = Project.load(path)
        except UnmixError as exc:
            show_error(self, "Cannot open the project", exc.message)
            return None
        self.clear_session()
        self.project = project
        params = project.parameters
        if params.get("axis_mode"):
            self.waveform.set_axis_mode(str(params["axis_mode"]))
        self.units.set_conversion(str(params.get("units") or "COUNTS"), params.get("response"),
                                  bool(params.get("rotate")))
        self.waveform.set_filter(params.get("filter"))
        self.waveform.set_stacked(bool(params.get("stacked", False)))
        self.annotations.restore(project.annotations)
        if project.inputs:
            self.jobs.start(load_request(project.inputs, project.loads))
        for synth in project.synthetic:
            self.jobs.start(synthetic_request(**synth))
        self.results.restore(project)
        self.catalogs.restore(params)
        self.preferences.add_recent(str(Path(path).resolve()))
        self.setWindowTitle(f"Unmix {__version__} — {Path(path).name}")
        return project

    def clear_session(self) -> None:
        self.loaded.clear()
        self.records.clear()
        self.displays.clear()
        self.filtered.clear()
        self.spectrograms.clear()
        self.spectrogram_sources.clear()
        self.current_key = None
        self.record_list.clear()
        self.waveform.set_display(None)
        self.waveform.set_records({})
        self.spectrogram.clear()
        self.span_label.setText("")
        self.results.clear()
        self.catalogs.clear()
        self.annotations.clear()
        self.project = Project()

    # --- misc -----------------------------------------------------------------------------------------------------

    def open_settings(self) -> None:
        if SettingsDialog(self.preferences, self).exec():
            self.update_device_label()

    def _job_failed(self, title: str, message: str, details: str) -> None:
        show_error(self, f"{title} failed", message, details)

    def _about(self) -> None:
        QMessageBox.about(self, "About Unmix", f"Unmix {__version__}\nClustering and source separation of InSight "
                          "SEIS data.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        for worker in self._background.values():
            worker.cancel()
        self._background.clear()  # a view computation finishing later has no view to draw into
        self.jobs.clear_queue()
        cancel_all(5000)
        super().closeEvent(event)
