"""The "Separate this cluster's windows" dialog: ``unmix separate --table T --target-cluster K --scale S --count N
[--background-cluster B]`` for a cluster of the table shown, run as a job of the main window.

The scale is the one of the view the action came from; the method, count, output format and "replace" start at the
CLI's defaults (:func:`cli_defaults`). The job (:func:`unmix.gui.tasks.separate_cluster`) runs in the window's job
panel, with its progress and Cancel; the outcome goes to the log and the status bar.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from unmix import pipeline
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, UnmixError
from unmix.export import FORMATS
from unmix.gui.option_widgets import OptionsForm
from unmix.gui.panels.pipeline import PathField, _method_spec
from unmix.gui.registry import JobRequest
from unmix.gui.tasks import separate_cluster
from unmix.separation.registry import MethodSpec, methods

NO_BACKGROUND = "none"


def cli_defaults() -> dict[str, Any]:
    """The defaults of ``unmix separate --target-cluster`` (from :mod:`unmix.pipeline`, as the CLI takes them):
    method, count, format and overwrite."""
    params = inspect.signature(pipeline.separate_cluster_windows).parameters
    return {"method": pipeline.DEFAULT_SEPARATION_METHOD, "count": pipeline.DEFAULT_TARGET_COUNT,
            "fmt": pipeline.DEFAULT_OUTPUT_FORMAT, "overwrite": params["overwrite"].default}


def outcome_text(report: dict) -> str:
    """One line on what a run did: windows separated, already done, files written, where."""
    return (f"{len(report['done'])} window(s) of cluster {report['cluster']} at scale {report['scale']} separated "
            f"({report['method']}), {len(report['skipped'])} already done; {len(report['outputs'])} file(s) written "
            f"into {report['folder']}")


def show_outcome(window: Any, report: dict) -> None:
    """The job's ``apply``: the outcome in the log and the status bar."""
    text = outcome_text(report)
    window.jobs.append_log(f"  {text}")
    # after the window's own "<job>: done", which follows apply
    QTimer.singleShot(0, lambda: window.statusBar().showMessage(text, 15000))


class SeparateClusterDialog(QDialog):
    """Method (with its options), count, format, output folder and the optional background cluster(s) of the prior
    for separating the most confident windows of ``cluster`` at ``scale`` of ``table`` (file ``path``); "Separate"
    starts the job in ``window``'s job panel and closes the dialog."""

    def __init__(self, table: ClusterTable, path: str | Path | None, window: Any, scale: int, cluster: int,
                 folder: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Separate this cluster's windows")
        self.table, self.path, self.window_ = table, (Path(path) if path else None), window
        self.scale = int(table.scales[table.scale_index(scale)])
        self.specs: dict[str, MethodSpec] = {name: _method_spec(name, spec) for name, spec in methods().items()}
        self.options: dict[str, OptionsForm] = {}
        self._fields(cluster, folder, cli_defaults())
        self._layout()
        self.method.currentIndexChanged.connect(self._method_changed)
        self._label_width = self.fontMetrics().horizontalAdvance("Background cluster(s)")
        self._method_changed()
        self.setMinimumWidth(560)

    def _fields(self, cluster: int, folder: str | Path, defaults: dict[str, Any]) -> None:
        table, occupancy = self.table, self.table.occupancy(self.scale)
        self.cluster = QComboBox()
        for k in range(table.n_clusters):
            self.cluster.addItem(f"{table.label(self.scale, k)} — {int(occupancy[k])} windows", k)
        self.cluster.setCurrentIndex(max(self.cluster.findData(int(cluster)), 0))
        self.method = QComboBox()
        for name, spec in self.specs.items():
            self.method.addItem(spec.title, name)
            self.method.setItemData(self.method.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentIndex(max(self.method.findData(defaults["method"]), 0))
        self.method_box = QWidget()
        self._method_layout = QVBoxLayout(self.method_box)
        self._method_layout.setContentsMargins(0, 0, 0, 0)
        self.background = QComboBox()
        self.background.setEditable(True)
        self.background.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.background.addItem(NO_BACKGROUND, None)
        for k in occupancy.nonzero()[0]:
            self.background.addItem(f"{table.label(self.scale, int(k))} — {int(occupancy[k])} windows", int(k))
        self.background.setToolTip("background cluster(s) whose windows are the prior of methods that take one "
                                   "(scatcov, hybrid): choose one, or type numbers or names, e.g. 0,3 or quiet night")
        self.count = QSpinBox()
        self.count.setRange(1, max(int(occupancy.max()), int(defaults["count"]), 1))
        self.count.setValue(int(defaults["count"]))
        self.count.setToolTip("how many windows: the most confident ones that do not overlap")
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.format.setCurrentText(str(defaults["fmt"]).upper())
        self.out = PathField("dir", "Output folder")
        self.out.set_text(str(folder))
        self.overwrite = QCheckBox("replace outputs of an earlier run")
        self.overwrite.setChecked(bool(defaults["overwrite"]))
        self.overwrite.setToolTip("unticked: windows already separated in this folder are skipped")

    def _layout(self) -> None:
        rate = self.table.meta.get("sampling_rate")
        seconds = f" ({self.scale / float(rate):.0f} s)" if rate else ""
        self.form = form = QFormLayout()
        form.addRow("Scale", QLabel(f"{self.scale}{seconds}"))
        form.addRow("Cluster", self.cluster)
        form.addRow("Method", self.method)
        form.addRow("Background cluster(s)", self.background)
        form.addRow(self.method_box)
        form.addRow("Windows", self.count)
        form.addRow("Format", self.format)
        form.addRow("Output folder", self.out)
        form.addRow("", self.overwrite)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.separate_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.separate_button.setText("Separate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel("The windows are read from the table's input files; the job runs in the Jobs panel (with "
                      "Cancel), as `unmix separate --target-cluster` does.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    @classmethod
    def open_for(cls, window: Any, table: ClusterTable, path: str | Path | None, scale: int, cluster: int,
                 folder: str | Path) -> SeparateClusterDialog:
        """Open a window-modal dialog for the main window's table (deleted once closed)."""
        dialog = cls(table, path, window, scale, cluster, folder)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()
        return dialog

    def method_options(self, method: str | None = None) -> OptionsForm:
        """The option fields of ``method`` (default: the chosen one), made the first time they are shown."""
        method = method or self.method.currentData()
        if method not in self.options:
            self.options[method] = OptionsForm(self.specs[method])
            self.options[method].align_labels(self._label_width)  # the method's fields line up with the form's
            self._method_layout.addWidget(self.options[method])
        return self.options[method]

    def _method_changed(self, *_args) -> None:
        method = self.method.currentData()
        self.method_options(method)
        for name, form in self.options.items():
            form.setVisible(name == method)
        prior = "prior" in self.specs[method].uses
        self.background.setEnabled(prior)
        label = self.form.labelForField(self.background)
        if label is not None:
            label.setEnabled(prior)
        self.adjustSize()

    def background_clusters(self) -> list[int]:
        """The prior's clusters: the item chosen, else the numbers or names typed ([] for none)."""
        index, text = self.background.currentIndex(), self.background.currentText().strip()
        if index >= 0 and text == self.background.itemText(index):
            data = self.background.itemData(index)
            return [] if data is None else [int(data)]
        if not text or text.lower() == NO_BACKGROUND:
            return []
        try:
            return self.table.resolve(text, self.scale)
        except ConfigError as exc:
            raise ConfigError(f"background cluster: {exc.message}") from None

    def request(self) -> JobRequest:
        """The job the fields describe (ConfigError for a choice the CLI would refuse)."""
        cluster, method = int(self.cluster.currentData()), self.method.currentData()
        spec = self.specs[method]
        if not int(self.table.occupancy(self.scale)[cluster]):
            raise ConfigError(f"cluster {self.table.label(self.scale, cluster)} has no windows at scale "
                              f"{self.scale}")
        folder = self.out.value()
        if not folder:
            raise ConfigError("choose an output folder")
        options = dict(self.method_options(method).changed())
        if "device" in spec.uses:
            prefs = getattr(self.window_, "preferences", None)
            options.setdefault("device", getattr(prefs, "device", None) or "auto")
        background = self.background_clusters() if "prior" in spec.uses else []
        if background:
            options.update(table=self.table, clusters=background, scale=self.scale)
        elif spec.requires_prior:
            raise ConfigError(f"{spec.title} needs a prior: choose the background cluster(s) whose windows it keeps")
        spec.check_options(options, spec.title)
        kwargs = {"table": self.table, "cluster": cluster, "scale": self.scale, "out_dir": folder,
                  "method": method, "options": options, "count": self.count.value(),
                  "fmt": self.format.currentText(), "overwrite": self.overwrite.isChecked(),
                  "table_path": str(self.path) if self.path else None}
        return JobRequest(f"Separate cluster {self.table.label(self.scale, cluster)} (scale {self.scale})",
                          separate_cluster, kwargs, show_outcome)

    def accept(self) -> None:
        """Start the job (a bad choice is one message and the dialog stays open)."""
        from unmix.gui.views.dialogs import show_error

        try:
            request = self.request()
        except UnmixError as exc:
            show_error(self, "Cannot separate", exc.message)
            return
        self.window_.jobs.start(request)
        super().accept()


__all__ = ["SeparateClusterDialog", "cli_defaults", "outcome_text", "show_outcome"]
