"""The session's pipeline results (paths of store, model, table and export; the cluster table; the separation) and
the views that show them: the results dock, the occupancy overlay on the browser, the export dialog.

Every path goes into the project (``project.results``) the moment a job produces it; reopening a project loads the
cluster table from disk instead of recomputing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from obspy import UTCDateTime
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QVBoxLayout, QWidget

from unmix.clusters import ClusterTable
from unmix.gui.registry import JobRequest
from unmix.gui.tasks import ClusterProducts, Separated, cluster_products
from unmix.gui.views.occupancy import OccupancyBar, OccupancyOverlay, window_key
from unmix.gui.views.results import ResultsPanel
from unmix.gui.views.timeline import TimelineData, timeline_data
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

RESULT_KEYS = ("store", "model", "table", "export")
PIPELINE_KEYS = ("features", "train", "cluster", "separate", "export")


def load_table(path: str, progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> ClusterTable:
    """Read a cluster table written earlier (job function: reopening a project recomputes nothing)."""
    progress(0.0, f"reading {Path(path).name}")
    return ClusterTable.load(path)


class ExportDialog(QDialog):
    """Format, folder and sources of the current separation; OK starts the export job."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        from unmix.gui.panels.pipeline import ExportForm

        self.setWindowTitle("Export separated sources")
        self.window_ = window
        self.form = ExportForm(window)
        form_values = window.results.forms()["export"].values()
        self.form.refresh()
        self.form.set_values(**form_values)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(buttons)
        self.resize(520, 200)

    def accept(self) -> None:
        from unmix.errors import UnmixError
        from unmix.gui.views.dialogs import show_error

        try:
            request = self.form.request()
        except UnmixError as exc:
            show_error(self, "Cannot export", exc.message)
            return
        self.window_.results.forms()["export"].set_values(**self.form.values())
        self.window_.jobs.start(request)
        super().accept()


class ResultsController(QObject):
    """Owns the pipeline's results for the main window and keeps the views and the project in step with them."""

    table_shown = Signal()
    timeline_shown = Signal()
    products_shown = Signal(int)
    separation_shown = Signal()
    window_jumped = Signal(int)
    exported = Signal(object)
    names_changed = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.table: ClusterTable | None = None
        self.products: dict[int, ClusterProducts] = {}
        self.separated: Separated | None = None
        self.panel = ResultsPanel()
        self.panel.scale_changed.connect(self.show_scale)
        self.panel.latent.window_clicked.connect(self.jump_to_window)
        self.panel.separation.export_requested.connect(self.open_export_dialog)
        self.panel.separation.message.connect(lambda line: self.window.jobs.append_log(f"  {line}"))
        self.panel.names_requested.connect(self.open_names_dialog)
        self.panel.compare_requested.connect(self.open_compare_dialog)
        self.panel.generate_requested.connect(self.open_generate_dialog)
        self.panel.separate_requested.connect(self._separate_busiest)
        self.bar = OccupancyBar()
        self.bar.hide()
        window.waveform.layout().insertWidget(1, self.bar)
        self.overlay = OccupancyOverlay(window.waveform, self.bar)
        self.bar.changed.connect(lambda _visible, scale: self.panel.set_scale(scale))
        self.bar.separate_requested.connect(self.open_separate_dialog)
        window.display_shown.connect(lambda _key: self.overlay.redraw())
        window.filtered_shown.connect(lambda _band: self.overlay.redraw())
        window.waveform.axis_mode_changed.connect(self.panel.separation.set_axis_mode)
        window.waveform.axis_mode_changed.connect(self.panel.timeline.set_axis_mode)
        self.panel.timeline.set_axis_mode(window.waveform.axis_mode)
        self.panel.timeline.time_clicked.connect(self.jump_to_time)
        self._linking = False  # the browser and the separation view follow each other's x range
        window.waveform.range_changed.connect(self._browser_range_changed)
        self.panel.separation.range_changed.connect(self._separation_range_changed)

    # --- paths ----------------------------------------------------------------------------------------------------

    @property
    def paths(self) -> dict[str, str]:
        return self.window.project.results

    def folder(self) -> Path:
        """Default output folder: beside the project file, else ``~/unmix-results`` (never beside the data, which
        may be a shared, read-only archive)."""
        project = self.window.project
        if project.path is not None:
            name = Path(project.path).name.removesuffix(".unmix.json").removesuffix(".json")
            return Path(project.path).resolve().parent / f"{name}-results"
        return Path.home() / "unmix-results"

    def default_path(self, name: str) -> Path:
        return self.folder() / name

    def set_path(self, key: str, path: str | os.PathLike) -> None:
        self.paths[key] = str(Path(path).resolve())
        self._refresh_forms()

    def input_files(self) -> list[str]:
        """Files behind the session: opened inputs, and synthetic records written beside the feature store."""
        from unmix.pipeline import synthetic_input_path

        project = self.window.project
        files = list(project.inputs)
        store = self.paths.get("store")
        if store:
            for params in project.synthetic:
                path = synthetic_input_path(Path(store).parent / "inputs", params)
                if path.is_file():
                    files.append(str(path))
        return files

    def forms(self) -> dict[str, Any]:
        """The pipeline forms of the job panel, by key."""
        jobs = self.window.jobs
        return {spec.key: jobs.forms.widget(i) for i, spec in enumerate(jobs.specs) if spec.key in PIPELINE_KEYS}

    def _refresh_forms(self) -> None:
        for form in self.forms().values():
            form.refresh()

    def form_values(self) -> dict[str, dict]:
        """Every pipeline form's fields, for the project file."""
        return {key: form.values() for key, form in self.forms().items()}

    # --- job results ----------------------------------------------------------------------------------------------

    def features_done(self, report: dict) -> None:
        self.set_path("store", report["store"])
        self.window.jobs.append_log(f"  {report['n_windows']} windows from {report['inputs']} input(s), "
                                    f"{report['computed']} computed now")

    def train_done(self, report: dict) -> None:
        self.set_path("model", report["model"])
        if report.get("reused"):
            self.window.jobs.append_log(f"  model on disk reused: {report['model']}")

    def table_done(self, table: ClusterTable) -> None:
        path = table.meta.get("table_path")
        if path:
            self.set_path("table", path)
        self.set_table(table)

    def set_table(self, table: ClusterTable | None) -> None:
        """Show a cluster table: spans on the browser, scales in the views, products of the current scale."""
        self.table = table
        self.products = {}
        self.overlay.set_table(table)
        self.panel.timeline.set_data(None)
        if table is None:
            self.panel.set_scales((), None)
            self.panel.set_products(None)
            return
        self._overview(table)
        rate = table.meta.get("sampling_rate")
        self.panel.set_scales(table.scales, float(rate) if rate else None, self.overlay.scale)
        self._refresh_forms()
        self.table_shown.emit()
        self.show_scale(self.panel.scale())

    def _overview(self, table: ClusterTable) -> None:
        """The occupancy-over-time view of ``table``: its index is built in a worker (O(windows))."""
        def apply(data: TimelineData) -> None:
            if self.table is table:
                scale = self.panel.scale() or table.scales[0]
                self.panel.timeline.set_data(data, self._label_of(scale), table.occupancy(scale),
                                             f" at scale {scale}", scale)
                self.timeline_shown.emit()

        self.window._run_background("occupancy overview", timeline_data, apply, table=table)

    def show_scale(self, scale: int | None) -> None:
        """Show the products of ``scale`` (computed in a job the first time) and the spans at that scale."""
        if self.table is None or scale is None:
            return
        self.bar.set_scale(scale)
        self.panel.timeline.set_counts(self.table.occupancy(scale), self._label_of(scale), f" at scale {scale}",
                                           scale)
        if scale in self.products:
            self._show_products(self.products[scale])
            return
        table = self.table

        def apply(_window: Any, products: ClusterProducts) -> None:
            if self.table is table:
                self.products[products.scale] = products
                if self.panel.scale() == products.scale:
                    self._show_products(products)

        self.window.jobs.start(JobRequest(f"Cluster views (scale {scale})", cluster_products,
                                          {"table": table, "scale": scale}, apply))

    def _show_products(self, products: ClusterProducts) -> None:
        self.panel.set_products(products, self._label_of(products.scale))
        for note in products.notes:
            self.window.jobs.append_log(f"  {note}")
        self.products_shown.emit(products.scale)

    def _label_of(self, scale: int):
        """How the views show cluster ``k`` at ``scale``: its number, and its name when it has one."""
        table = self.table
        return (lambda k: table.label(scale, k)) if table is not None else str

    def separation_done(self, separated: Separated) -> None:
        self.separated = separated
        display = self.window.displays.get(separated.key)
        self.panel.separation.set_result(separated.original, separated.result, self.window.waveform.axis_mode,
                                         separated.target, t_ref=display.t_ref if display is not None else None)
        if self._linked():
            self._browser_range_changed(*self.window.waveform.x_range())
        self.panel.tabs.setCurrentWidget(self.panel.separation)
        self.show_dock()
        self._refresh_forms()
        self.separation_shown.emit()

    def export_done(self, written: dict) -> None:
        self.set_path("export", written["folder"])
        self.window.jobs.append_log(f"  {written['summary']} → {written['folder']}")
        if written["failed"]:
            from unmix.gui.views.dialogs import show_error

            lines = [f"{path}: {message}" for path, message in written["failed"]]
            show_error(self.window, "Export: some inputs failed", f"{len(lines)} input(s) failed; the others were "
                       "exported.", "\n".join(lines))
        self.exported.emit(written)

    # --- interaction ----------------------------------------------------------------------------------------------

    def _linked(self) -> bool:
        """The separation view follows the browser when both show the same record (hence the same time origin)."""
        return self.separated is not None and self.separated.key == self.window.current_key

    def _browser_range_changed(self, x0: float, x1: float) -> None:
        if self._linked() and not self._linking:
            self._linking = True
            try:
                self.panel.separation.set_x_range(x0, x1)
            finally:
                self._linking = False

    def _separation_range_changed(self, x0: float, x1: float) -> None:
        if self._linked() and not self._linking:
            self._linking = True
            try:
                self.window.waveform.set_x_range(x0, x1)
            finally:
                self._linking = False

    def show_dock(self) -> None:
        dock = getattr(self.window, "results_dock", None)
        if dock is not None:
            dock.show()
            dock.raise_()

    def jump_to_window(self, index: int) -> None:
        """Show table window ``index`` (its sub-window at the current scale, with context) in the browser."""
        table, win = self.table, self.window
        if table is None or not 0 <= index < table.n_windows:
            return
        s = table.scale_index(self.panel.scale() or table.scales[0])
        a, b = (float(v) for v in table.intervals[index, s])
        key = self._display_for(window_key(table, index), (a + b) / 2)
        if key is None:
            win.statusBar().showMessage(f"window {index} is in a record that is not open", 5000)
            return
        t_ref = win.displays[key].t_ref
        pad = max(b - a, 1.0)
        win.show_key(key, span=(a - t_ref - pad, b - t_ref + pad))
        self.overlay.mark((a, b))
        win.statusBar().showMessage(f"window {index}: cluster {int(table.cluster[index, s])} "
                                    f"(confidence {float(table.confidence[index, s]):.2f})", 8000)
        self.window_jumped.emit(index)

    def jump_to_time(self, t: float) -> None:
        """Show POSIX time ``t`` (10 minutes either side) in the browser, in the record shown when it covers ``t``,
        else in another open record that does."""
        win = self.window
        current = win.current_key
        key = current if current and self._covers(current, t) else self._display_for(None, t)
        if key is None or not self._covers(key, t):
            win.statusBar().showMessage(f"{UTCDateTime(t).strftime('%Y-%m-%d %H:%M:%S')} UTC is in no open record "
                                        "(open its waveforms to see it)", 5000)
            return
        t_ref = win.displays[key].t_ref
        win.show_key(key, span=(t - t_ref - 600.0, t - t_ref + 600.0))

    def _covers(self, key: str, t: float) -> bool:
        display = self.window.displays[key]
        lo, hi = display.span
        return lo - 1.0 <= t - display.t_ref <= hi + 1.0

    def _display_for(self, key: str | None, t: float) -> str | None:
        displays = self.window.displays
        candidates = [k for k in displays if key is None or k.split("#")[0] == key] or list(displays)
        for k in candidates:
            lo, hi = displays[k].span
            if lo - 1.0 <= t - displays[k].t_ref <= hi + 1.0:
                return k
        return None

    def open_export_dialog(self) -> ExportDialog:
        dialog = ExportDialog(self.window)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()
        return dialog

    def table_path(self) -> Path | None:
        """The file of the current cluster table: the project's, else where the model wrote it (None: no file)."""
        if self.table is None:
            return None
        path = self.paths.get("table") or self.table.meta.get("table_path")
        return Path(path) if path else None

    def open_names_dialog(self):
        """The "Cluster names" dialog for the current table (a status-bar line when there is none yet)."""
        from unmix.gui.dialogs.cluster_names import ClusterNamesDialog

        if self.table is None:
            self.window.statusBar().showMessage("no cluster table yet: run Cluster first (or open a project)", 5000)
            return None
        dialog = ClusterNamesDialog.open_for(self.window, self.table, self.table_path(), self.panel.scale())
        dialog.names_saved.connect(self._names_saved)
        return dialog

    def open_compare_dialog(self):
        """The "Compare cluster tables" dialog for the current table (a status-bar line when there is none yet)."""
        from unmix.gui.dialogs.compare_tables import CompareTablesDialog

        if self.table is None:
            self.window.statusBar().showMessage("no cluster table yet: run Cluster first (or open a project)", 5000)
            return None
        dialog = CompareTablesDialog.open_for(self.window, self.table, self.table_path(), self.panel.scale())
        dialog.names_saved.connect(self._names_saved)
        return dialog

    def open_generate_dialog(self):
        """The "Generate from a cluster" dialog for the current table (a status-bar line when there is none yet)."""
        from unmix.gui.dialogs.generate_cluster import GenerateClusterDialog

        if self.table is None:
            self.window.statusBar().showMessage("no cluster table yet: run Cluster first (or open a project)", 5000)
            return None
        return GenerateClusterDialog.open_for(self.window, self.table, self.table_path(), self.panel.scale())

    def _separate_busiest(self):
        """The Separate button: the dialog for the scale shown, preset to its busiest cluster (it can be changed)."""
        scale = self.panel.scale()
        if self.table is None or scale is None:
            return self.open_separate_dialog(0, scale)
        return self.open_separate_dialog(int(np.argmax(self.table.occupancy(scale))), scale)

    def open_separate_dialog(self, cluster: int, scale: int | None = None):
        """The "Separate this cluster's windows" dialog for ``cluster`` at ``scale`` (default: the scale shown) of
        the current table; its output folder defaults to one per cluster and scale in the results folder."""
        from unmix.gui.dialogs.separate_cluster import SeparateClusterDialog

        scale = scale or self.overlay.scale or self.panel.scale()
        if self.table is None or scale is None:
            self.window.statusBar().showMessage("no cluster table yet: run Cluster first (or open a project)", 5000)
            return None
        folder = self.folder() / f"separated-cluster{int(cluster)}-scale{int(scale)}"
        return SeparateClusterDialog.open_for(self.window, self.table, self.table_path(), scale, cluster, folder)

    def _names_saved(self, path: Path | None) -> None:
        """Show the new names wherever clusters are shown: legend, result views, the forms' fields."""
        self.overlay.redraw()
        scale = self.panel.scale()
        if scale in self.products:
            self.panel.set_products(self.products[scale], self._label_of(scale))
        if self.table is not None and scale is not None:
            self.panel.timeline.set_counts(self.table.occupancy(scale), self._label_of(scale), f" at scale {scale}",
                                           scale)
        self._refresh_forms()
        named = sum(len(per) for per in self.table.names.values()) if self.table is not None else 0
        where = f"saved in {path}" if path else "not saved: the table has no file"
        self.window.jobs.append_log(f"Cluster names: {named} named cluster(s), {where}")
        self.names_changed.emit()

    def scatcov_options(self, clusters: list[int], scale: int) -> dict:
        """Options of the scattering-covariance separator: prior from ``clusters`` at ``scale`` of the table."""
        return {"table": self.table, "clusters": list(clusters), "scale": int(scale),
                "device": self.window.preferences.device}

    # --- project --------------------------------------------------------------------------------------------------

    def restore(self, project) -> None:
        """After a project was opened: refill the forms, and load the cluster table from disk when it exists."""
        forms = self.forms()
        for key, values in (project.parameters.get("pipeline") or {}).items():
            if key in forms and isinstance(values, dict):
                forms[key].set_values(**values)
        self._refresh_forms()
        table = project.results.get("table")
        if table and Path(table).is_file():
            self.open_table(table, show=False)

    def open_table(self, path: str | os.PathLike, show: bool = True) -> None:
        """Read a cluster table in a job (a mission's takes seconds) and show it; it becomes the project's table.
        ``show`` raises the results dock once it is there."""
        path = str(Path(path).resolve())

        def apply(_window: Any, table: ClusterTable) -> None:
            self.set_path("table", path)
            self.set_table(table)
            if show:
                self.show_dock()

        self.window.jobs.start(JobRequest("Open cluster table", load_table, {"path": path}, apply))

    def clear(self) -> None:
        self.separated = None
        self.overlay.marked = None
        self.set_table(None)
        self.panel.separation.set_result(None, None)
