"""The "Cluster names" dialog: name the clusters of the current cluster table, per scale, with suggestions from
evidence (``unmix.analysis.naming``), and save the names in the table file.

The data steps (rows of a scale, suggestions, applying and saving names, the ground truth of a synthetic record) are
plain functions; the Qt classes only show them. Nothing changes in the table until OK: then every name is checked
first, set, and the table file rewritten atomically; an invalid name is one message and the dialog stays open.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unmix.analysis.naming import Suggestion, suggest
from unmix.catalogs import Catalog
from unmix.clusters import ClusterTable, check_name
from unmix.errors import ConfigError, UnmixError
from unmix.gui.dialogs.table_dialog import TableDialog
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

COLUMNS = ("Cluster", "Windows", "Name", "Suggested", "Evidence")
NAME_COLUMN = COLUMNS.index("Name")
CATALOG_FILTER = ("Catalogues (*.txt *.csv *.xml *.quakeml *.markers *.json);;Glitch lists (*.txt *.csv);;"
                  "QuakeML (*.xml *.quakeml);;Snuffler markers (*.markers *.txt);;truth.json (*.json);;All files (*)")


# --- data steps (no Qt) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameRow:
    """One occupied cluster of a scale as the dialog lists it."""

    cluster: int
    windows: int
    name: str
    suggestion: str
    evidence: str


def name_rows(table: ClusterTable, scale: int, found: dict[int, Suggestion] | None = None) -> list[NameRow]:
    """Occupied clusters of ``scale``: number, windows, the user's name, and the suggestion with its evidence
    (from ``found``, a fresh :func:`~unmix.analysis.naming.suggest`, else what the table stores)."""
    occupancy = table.occupancy(scale)
    stored = table.suggestions.get(int(scale), {})
    rows = []
    for k in (int(k) for k in occupancy.nonzero()[0]):
        if found is not None:
            sg = found.get(k)
            suggestion, evidence = (sg.name, sg.evidence) if sg is not None else ("", "")
        else:
            suggestion, evidence = stored.get(k, {}).get("name", ""), stored.get(k, {}).get("evidence", "")
        rows.append(NameRow(k, int(occupancy[k]), table.name_of(scale, k), suggestion, evidence))
    return rows


def suggest_scales(table: ClusterTable, catalog: Catalog | None = None) -> dict[int, dict[int, Suggestion]]:
    """:func:`~unmix.analysis.naming.suggest` at every scale of ``table``, as scale → cluster → suggestion."""
    return {int(s): {sg.cluster: sg for sg in suggest(table, s, catalog)} for s in table.scales}


def apply_names(table: ClusterTable, names: dict[int, dict[int, str]], path: str | Path | None = None,
                suggestions: dict[int, dict[int, Suggestion]] | None = None) -> Path | None:
    """Set ``names`` (scale → cluster → name, '' for none) on ``table``, store ``suggestions`` (those with a name)
    when given, and rewrite the table file ``path`` atomically when given. Every name is checked before anything
    changes; when a name is invalid or the file cannot be written the table is left as it was (ConfigError or the
    writer's UnmixError, one line)."""
    for scale, per in names.items():
        for k, name in per.items():
            if name.strip():
                try:
                    check_name(name)
                except ConfigError as exc:
                    raise ConfigError(f"scale {scale}, cluster {k}: {exc.message}") from None
    before = copy.deepcopy(table.names), copy.deepcopy(table.suggestions)
    try:
        for scale, per in names.items():
            for k, name in per.items():
                table.set_name(scale, k, name.strip())
        if suggestions is not None:
            table.suggestions = {int(s): {k: sg.to_dict() for k, sg in per.items() if sg.name}
                                 for s, per in suggestions.items()}
        return table.save(path, overwrite=True) if path else None
    except BaseException:
        table.names, table.suggestions = before
        raise


def synthetic_truth(params: dict, progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> Catalog:
    """The ground-truth catalogue (glitches, spikes, gusts, dust devils, quakes) of the synthetic record of
    ``params`` (the project's ``synthetic`` entries), regenerated: generation is deterministic in its seed (job)."""
    from unmix.catalogs import read_truth
    from unmix.synthetic import SyntheticConfig, generate

    keys = ("sols", "hours", "seed", "gaps", "start_sol", "sampling_rate")
    synth = generate(SyntheticConfig(**{k: params[k] for k in keys if params.get(k) is not None}),
                     progress=progress, token=token)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "truth.json"
        path.write_text(json.dumps(synth.truth_dict()))
        catalog = read_truth(path)
    return Catalog(list(catalog), f"truth of the synthetic record (seed {params.get('seed', 0)})")


# --- Qt ----------------------------------------------------------------------------------------------------------


def _item(text: str, editable: bool = False, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
    item.setFlags(flags | Qt.ItemFlag.ItemIsEditable if editable else flags)
    if tip:
        item.setToolTip(tip)
    return item


class ScaleNames(QTableWidget):
    """The occupied clusters of one scale; only the Name column is editable."""

    def __init__(self, scale: int, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.scale = int(scale)
        self.rows: list[NameRow] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        trigger = QAbstractItemView.EditTrigger
        self.setEditTriggers(trigger.DoubleClicked | trigger.SelectedClicked | trigger.EditKeyPressed
                             | trigger.AnyKeyPressed)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.horizontalHeader()
        for c in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)

    def set_rows(self, rows: list[NameRow], names: dict[int, str] | None = None) -> None:
        """Show ``rows``; ``names`` (cluster → text) keeps what the user typed over the table's names."""
        from unmix.gui.views.occupancy import cluster_colour

        self.rows = rows
        self.setRowCount(len(rows))
        for i, r in enumerate(rows):
            number = _item(str(r.cluster))
            number.setForeground(QBrush(cluster_colour(r.cluster)))
            number.setData(Qt.ItemDataRole.DecorationRole, cluster_colour(r.cluster))
            self.setItem(i, 0, number)
            self.setItem(i, 1, _item(str(r.windows)))
            name = (names or {}).get(r.cluster, r.name)
            self.setItem(i, NAME_COLUMN, _item(name, editable=True, tip="double-click or type to name this cluster; "
                                                                       "empty: no name"))
            self.setItem(i, 3, _item(r.suggestion or "—", tip=r.evidence))
            self.setItem(i, 4, _item(r.evidence, tip=r.evidence))
        self.resizeColumnsToContents()
        self.setColumnWidth(NAME_COLUMN, max(self.columnWidth(NAME_COLUMN), 150))
        self.setColumnWidth(3, min(max(self.columnWidth(3), 90), 140))

    def names(self) -> dict[int, str]:
        """Cluster → the name in its cell ('' for none)."""
        return {r.cluster: (self.item(i, NAME_COLUMN).text() if self.item(i, NAME_COLUMN) else "")
                for i, r in enumerate(self.rows)}

    def set_name(self, cluster: int, name: str) -> None:
        for i, r in enumerate(self.rows):
            if r.cluster == cluster:
                self.item(i, NAME_COLUMN).setText(name)

    def accept_suggestions(self) -> int:
        """Copy each suggestion into an empty name cell; returns how many were filled."""
        filled = 0
        for i, r in enumerate(self.rows):
            cell = self.item(i, NAME_COLUMN)
            if r.suggestion and not cell.text().strip():
                cell.setText(r.suggestion)
                filled += 1
        return filled


class ClusterNamesDialog(TableDialog):
    """Names of the clusters of ``table`` per scale; "Suggest" (with an optional catalogue or the ground truth of a
    synthetic record), "Accept suggestions", OK (set and save to ``path``) / Cancel.

    ``window`` (optional) is the main window: its job panel runs the regeneration of a synthetic record's truth, and
    its project lists the synthetic records. ``names_saved(path or None)`` is emitted after OK applied the names.
    """

    names_saved = Signal(object)

    def __init__(self, table: ClusterTable, path: str | Path | None = None, window: Any = None,
                 scale: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Cluster names")
        self.table, self.path, self.window_ = table, (Path(path) if path else None), window
        self.found: dict[int, dict[int, Suggestion]] | None = None  # from the last "Suggest"
        self.tabs = QTabWidget()
        self.views: dict[int, ScaleNames] = {}
        rate = table.meta.get("sampling_rate")
        for s in table.scales:
            view = ScaleNames(s)
            view.set_rows(name_rows(table, s))
            self.views[int(s)] = view
            text = f"scale {s}" + (f" ({s / float(rate):.0f} s)" if rate else "")
            self.tabs.addTab(view, text)
        if scale is not None and int(scale) in self.views:
            self.tabs.setCurrentWidget(self.views[int(scale)])

        self.evidence = QComboBox()
        self.evidence.setToolTip("what the suggestions may use beside the time of day and the share of windows: "
                                 "a catalogue whose kinds (glitch, quake, …) can name a cluster")
        self.evidence.addItem("no catalogue (time of day, rarity)", None)
        project = getattr(window, "project", None)
        for params in getattr(project, "synthetic", None) or []:
            self.evidence.addItem(f"truth of the synthetic record (seed {params.get('seed', 0)})", ("truth", params))
        self.evidence.addItem("catalogue file…", "choose")
        self.evidence.activated.connect(self._evidence_chosen)
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("suggest names from evidence (catalogue overlap, time of day, rarity) at every "
                                       "scale; names you gave are kept")
        self.suggest_button.clicked.connect(self.suggest)
        self.accept_button = QPushButton("Accept suggestions")
        self.accept_button.setToolTip("copy the suggestions into the clusters that have no name yet")
        self.accept_button.clicked.connect(self.accept_suggestions)
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Evidence"))
        tools.addWidget(self.evidence, 1)
        tools.addWidget(self.suggest_button)
        tools.addWidget(self.accept_button)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self._saved_text()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel("Names stand for cluster numbers wherever clusters are chosen (e.g. the background of Separate: "
                      "<i>quiet night</i> or <i>quiet night,2</i>). Several clusters may share a name.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(tools)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(860, 440)

    def _saved_text(self) -> None:
        if self.path is not None:
            self.status.setText(f"OK saves the names in {self.path}")
        else:
            self.status.setText("This table has no file: the names are kept for this session only")

    # --- evidence -------------------------------------------------------------------------------------------------

    def set_catalog_file(self, path: str | Path) -> None:
        """Use the catalogue file ``path`` (glitch list, QuakeML, markers, truth.json) for the suggestions."""
        text = f"catalogue: {Path(path).name}"
        index = self.evidence.findText(text)
        if index < 0:
            index = self.evidence.count() - 1  # before "catalogue file…"
            self.evidence.insertItem(index, text, ("file", str(path)))
            self.evidence.setItemData(index, str(path), Qt.ItemDataRole.ToolTipRole)
        self.evidence.setCurrentIndex(index)

    def _evidence_chosen(self, index: int) -> None:
        if self.evidence.itemData(index) != "choose":
            return
        path, _ = QFileDialog.getOpenFileName(self, "Catalogue for the suggestions", "", CATALOG_FILTER)
        if path:
            self.set_catalog_file(path)
        else:
            self.evidence.setCurrentIndex(0)

    # --- actions --------------------------------------------------------------------------------------------------

    def suggest(self) -> None:
        """Suggest names with the chosen evidence (a synthetic record's truth is regenerated in a job)."""
        from unmix.catalogs import read_catalog
        from unmix.gui.views.dialogs import show_error

        choice = self.evidence.currentData()
        if isinstance(choice, tuple) and choice[0] == "truth":
            self._suggest_from_truth(choice[1])
            return
        try:
            catalog = read_catalog(choice[1]) if isinstance(choice, tuple) else None
            self.show_suggestions(suggest_scales(self.table, catalog), catalog)
        except UnmixError as exc:
            show_error(self, "Cannot suggest names", exc.message)

    def _suggest_from_truth(self, params: dict) -> None:
        from unmix.gui.registry import JobRequest

        jobs = getattr(self.window_, "jobs", None)
        if jobs is None:  # no job panel: do it here
            self.show_suggestions(suggest_scales(self.table, synthetic_truth(params)))
            return
        table = self.table

        def apply(_window: Any, catalog: Catalog) -> None:
            if self.isVisible():
                self.show_suggestions(suggest_scales(table, catalog), catalog)

        self.suggest_button.setEnabled(False)
        for signal in (jobs.job_finished, jobs.job_failed, jobs.job_cancelled):
            signal.connect(self._job_ended)
        self.status.setText("regenerating the synthetic record for its ground truth (see the Jobs panel)…")
        jobs.start(JobRequest(f"Ground truth of synthetic record (seed {params.get('seed', 0)})", synthetic_truth,
                              {"params": params}, apply))

    def _job_ended(self, *_args) -> None:
        """A job ended (perhaps one queued before ours): Suggest can be pressed again."""
        self.suggest_button.setEnabled(True)
        jobs = self.window_.jobs
        for signal in (jobs.job_finished, jobs.job_failed, jobs.job_cancelled):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(self._job_ended)

    def show_suggestions(self, found: dict[int, dict[int, Suggestion]], catalog: Catalog | None = None) -> None:
        """Show fresh suggestions (kept for OK); what the user typed stays."""
        self.found = found
        self.suggest_button.setEnabled(True)
        for s, view in self.views.items():
            view.set_rows(name_rows(self.table, s, found.get(s, {})), view.names())
        named = sum(1 for per in found.values() for sg in per.values() if sg.name)
        source = f" with {len(catalog)} catalogued events" if catalog is not None else ""
        self.status.setText(f"{named} suggestion(s){source}: hover over one for its evidence; "
                            "“Accept suggestions” fills the clusters without a name")

    def accept_suggestions(self) -> int:
        filled = sum(view.accept_suggestions() for view in self.views.values())
        self.status.setText(f"{filled} name(s) filled from the suggestions; OK to keep them")
        return filled

    def names(self) -> dict[int, dict[int, str]]:
        """Scale → cluster → the name typed (every listed cluster; '' for none)."""
        return {s: view.names() for s, view in self.views.items()}

    def accept(self) -> None:
        from unmix.gui.views.dialogs import show_error

        try:
            saved = apply_names(self.table, self.names(), self.path, self.found)
        except UnmixError as exc:
            show_error(self, "Cannot set the cluster names", exc.message)
            return
        self.names_saved.emit(saved)
        super().accept()


__all__ = ["ClusterNamesDialog", "NameRow", "apply_names", "name_rows", "suggest_scales", "synthetic_truth"]
