"""The "Compare with another table" dialog: align the clusters of the current cluster table with those of another
table file (two training seeds, a retrained model, another season) or of the same table at another scale, as
``unmix match`` does, and optionally copy the names across.

The data steps (the comparisons, their rows, copying the names and saving) are plain functions; the Qt classes only
show them. Matching is a Hungarian assignment on a contingency table of at most a few hundred cells, and a table
file loads in well under a second, so the comparison runs in the GUI thread.
"""

from __future__ import annotations

import copy
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
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, UnmixError
from unmix.gui.dialogs.table_dialog import TableDialog
from unmix.matching import Matching, match_clusters, match_tables

COLUMNS = ("Cluster", "Windows", "Partner", "Shared windows", "Share")
TABLE_FILTER = "Cluster tables (*.h5);;All files (*)"
FILE_MODE, SCALE_MODE = "file", "scale"


# --- data steps (no Qt) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairRow:
    """One cluster of the current table (``a``) with its partner in the other (``b``); ``partner`` None: none."""

    cluster: int
    label: str
    windows: int
    partner: int | None
    partner_label: str
    shared: int

    @property
    def share(self) -> float:
        """Fraction of the cluster's shared windows that its partner holds too."""
        return self.shared / self.windows if self.windows else 0.0


@dataclass
class Comparison:
    """The matching of ``a`` at ``scale_a`` with ``b`` at ``scale_b`` and its rows (every cluster of ``a``)."""

    scale_a: int
    scale_b: int
    matching: Matching
    rows: list[PairRow]

    @property
    def title(self) -> str:
        return f"scale {self.scale_a}" if self.scale_a == self.scale_b else f"scale {self.scale_a} → {self.scale_b}"

    @property
    def summary(self) -> str:
        m = self.matching
        return f"{m.n_windows} shared windows, ARI {m.ari:.3f}, {m.agreement:.1%} on matched clusters"


def pair_rows(a: ClusterTable, b: ClusterTable, scale_a: int, scale_b: int, m: Matching) -> list[PairRow]:
    """Each cluster of ``a`` found among the shared windows, with its partner and the windows both hold (labels
    with names, as ``unmix match`` prints them)."""
    cols = {int(k): j for j, k in enumerate(m.clusters_b)}
    rows = []
    for i, ka in enumerate(int(k) for k in m.clusters_a):
        windows = int(m.contingency[i].sum())
        kb = m.mapping.get(ka)
        if kb is None:
            rows.append(PairRow(ka, a.label(scale_a, ka), windows, None, "(no partner)", 0))
        else:
            rows.append(PairRow(ka, a.label(scale_a, ka), windows, kb, b.label(scale_b, kb),
                                int(m.contingency[i, cols[kb]])))
    return rows


def compare(a: ClusterTable, b: ClusterTable, scale: int | None = None, scale_b: int | None = None
            ) -> list[Comparison]:
    """Per scale, ``a``'s clusters matched with ``b``'s (``unmix match``): every shared scale, or ``scale``; with
    ``scale_b``, ``a`` at ``scale`` against ``b`` at ``scale_b`` window by window (two scales of one table: ``b``
    must be ``a``)."""
    if scale_b is not None:
        if scale is None or b is not a:
            raise ConfigError("two scales are compared within one table: choose this table and both scales")
        m = match_clusters(a.cluster[:, a.scale_index(scale)], b.cluster[:, b.scale_index(scale_b)])
        found = {(int(scale), int(scale_b)): m}
    else:
        found = {(s, s): m for s, m in match_tables(a, b, None if scale is None else (int(scale),)).items()}
    return [Comparison(sa, sb, m, pair_rows(a, b, sa, sb, m)) for (sa, sb), m in found.items()]


def copy_names(a: ClusterTable, b: ClusterTable, comparisons: list[Comparison], path: str | Path | None = None
               ) -> int:
    """Give each matched cluster of ``b`` the name of its partner in ``a`` (clusters of ``a`` without a name leave
    ``b``'s as it is), then rewrite ``b``'s file ``path`` atomically when given (``unmix match --copy-names``).
    Returns how many names were copied; when the file cannot be written ``b`` is left as it was."""
    before = copy.deepcopy(b.names)
    copied = 0
    try:
        for c in comparisons:
            for ka, kb in c.matching.mapping.items():
                name = a.name_of(c.scale_a, ka)
                if name:
                    b.set_name(c.scale_b, kb, name)
                    copied += 1
        if path is not None:
            b.save(path, overwrite=True)
    except BaseException:
        b.names = before
        raise
    return copied


def same_file(a: str | Path | None, b: str | Path | None) -> bool:
    """Both paths name one existing file."""
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


# --- Qt ----------------------------------------------------------------------------------------------------------


def _item(text: str, tip: str = "", align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tip:
        item.setToolTip(tip)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class PairsView(QWidget):
    """One comparison: its summary line and each cluster of the current table with its partner."""

    def __init__(self, comparison: Comparison, parent: QWidget | None = None) -> None:
        from unmix.gui.views.occupancy import cluster_colour

        super().__init__(parent)
        self.comparison = comparison
        self.summary = QLabel(comparison.summary)
        self.table = QTableWidget(len(comparison.rows), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        for i, r in enumerate(comparison.rows):
            first = _item(r.label)
            first.setData(Qt.ItemDataRole.DecorationRole, cluster_colour(r.cluster))
            self.table.setItem(i, 0, first)
            self.table.setItem(i, 1, _item(str(r.windows), "windows of this cluster among the shared ones", True))
            partner = _item(r.partner_label)
            if r.partner is not None:
                partner.setData(Qt.ItemDataRole.DecorationRole, cluster_colour(r.partner))
            else:
                partner.setForeground(QBrush(Qt.GlobalColor.gray))
            self.table.setItem(i, 2, partner)
            self.table.setItem(i, 3, _item(str(r.shared), "windows in this cluster and in its partner", True))
            self.table.setItem(i, 4, _item(f"{r.share:.0%}" if r.partner is not None else "—", align_right=True))
        self.table.resizeColumnsToContents()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column in (0, 2):  # the labels take the room (names may be long)
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""


class CompareTablesDialog(TableDialog):
    """Compare the current ``table`` (file ``path``, may be None) with another table file or with itself at another
    scale; show ARI, agreement and the pairs per scale; "Copy names to the other table".

    ``names_saved(path or None)`` is emitted when names were copied into the current table (same table, another
    scale), so the main window shows them.
    """

    names_saved = Signal(object)

    def __init__(self, table: ClusterTable, path: str | Path | None = None, window: Any = None,
                 scale: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Compare cluster tables")
        self.table, self.path, self.window_ = table, (Path(path) if path else None), window
        self.other: ClusterTable | None = None  # the table compared with (self.table for another scale)
        self.other_path: Path | None = None
        self.comparisons: list[Comparison] = []
        rate = table.meta.get("sampling_rate")
        self._rate = float(rate) if rate else None

        self.mode = QComboBox()
        self.mode.addItem("another cluster table file", FILE_MODE)
        self.mode.addItem("this table at another scale", SCALE_MODE)
        self.mode.setToolTip("a table of the same record from another training seed, model or run; or two scales of "
                             "this table, window by window")
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("cluster table (.h5)")
        self.file_edit.setToolTip("windows are paired by the start time of their sub-window at each scale")
        self.browse = QPushButton("Choose…")
        self.browse.clicked.connect(self._choose_file)
        self.scale_combo = QComboBox()
        self.other_scale = QComboBox()
        self.other_scale.setToolTip("the scale of this table whose clusters are matched with those of “Scale”")
        for s in table.scales:
            self.other_scale.addItem(self._scale_text(s), int(s))
        self.compare_button = QPushButton("Compare")
        self.compare_button.setDefault(True)
        self.compare_button.clicked.connect(self.run)
        form = QGridLayout()
        form.addWidget(QLabel("Compare with"), 0, 0)
        form.addWidget(self.mode, 0, 1, 1, 2)
        form.addWidget(QLabel("Table"), 1, 0)
        form.addWidget(self.file_edit, 1, 1)
        form.addWidget(self.browse, 1, 2)
        form.addWidget(QLabel("Scale"), 2, 0)
        scales = QHBoxLayout()
        scales.addWidget(self.scale_combo)
        self.other_label = QLabel("against scale")
        scales.addWidget(self.other_label)
        scales.addWidget(self.other_scale)
        scales.addStretch(1)
        scales.addWidget(self.compare_button)
        form.addLayout(scales, 2, 1, 1, 2)
        form.setColumnStretch(1, 1)

        self.tabs = QTabWidget()
        self.views: list[PairsView] = []
        self.copy_button = QPushButton("Copy names to the other table")
        self.copy_button.setToolTip("give each matched cluster of the other table the name of its partner here, and "
                                    "save that table (as unmix match --copy-names)")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_names)
        self.status = QLabel("Choose the table to compare with, then Compare")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)
        layout.addWidget(buttons)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()
        if scale is not None:
            self.set_scale(scale)
        self.resize(820, 520)

    def _scale_text(self, s: int) -> str:
        return f"{s}" + (f" ({s / self._rate:.0f} s)" if self._rate else "")

    def _mode_changed(self, *_args) -> None:
        by_file = self.mode.currentData() == FILE_MODE
        for w in (self.file_edit, self.browse):
            w.setEnabled(by_file)
        self.other_scale.setEnabled(not by_file)
        self.other_label.setEnabled(not by_file)
        current = self.scale_combo.currentData()
        self.scale_combo.clear()
        if by_file:
            self.scale_combo.addItem("every shared scale", None)
        for s in self.table.scales:
            self.scale_combo.addItem(self._scale_text(s), int(s))
        index = self.scale_combo.findData(current)
        self.scale_combo.setCurrentIndex(max(index, 0))
        if not by_file and self.other_scale.currentData() == self.scale_combo.currentData() and len(
                self.table.scales) > 1:
            self.other_scale.setCurrentIndex((self.scale_combo.currentIndex() + 1) % len(self.table.scales))

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(self.mode.findData(mode))

    def set_scale(self, scale: int | None, other: int | None = None) -> None:
        """Choose the scale of this table (None: every shared scale) and, for two scales, the other one."""
        self.scale_combo.setCurrentIndex(max(self.scale_combo.findData(None if scale is None else int(scale)), 0))
        if other is not None:
            self.other_scale.setCurrentIndex(max(self.other_scale.findData(int(other)), 0))

    def set_file(self, path: str | Path) -> None:
        self.set_mode(FILE_MODE)
        self.file_edit.setText(str(path))

    def _choose_file(self) -> None:
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Cluster table to compare with", start, TABLE_FILTER)
        if path:
            self.set_file(path)

    # --- actions --------------------------------------------------------------------------------------------------

    def run(self) -> list[Comparison]:
        """Compare with the chosen table and show the result (a user error is one message)."""
        from unmix.gui.views.dialogs import show_error

        try:
            if self.mode.currentData() == FILE_MODE:
                text = self.file_edit.text().strip()
                if not text:
                    raise ConfigError("choose the cluster table file to compare with")
                other_path = Path(text).expanduser()
                other = self.table if same_file(other_path, self.path) else ClusterTable.load(other_path)
                found = compare(self.table, other, self.scale_combo.currentData())
            else:
                other, other_path = self.table, self.path
                found = compare(self.table, self.table, self.scale_combo.currentData(),
                                self.other_scale.currentData())
        except UnmixError as exc:
            show_error(self, "Cannot compare the tables", exc.message)
            return []
        self.show_comparisons(found, other, other_path)
        return found

    def show_comparisons(self, found: list[Comparison], other: ClusterTable, other_path: Path | None) -> None:
        self.comparisons, self.other, self.other_path = found, other, other_path
        self.tabs.clear()
        self.views = []
        for c in found:
            view = PairsView(c)
            self.views.append(view)
            self.tabs.addTab(view, f"{c.title}: ARI {c.matching.ari:.2f}")
        names = sum(1 for c in found for ka in c.matching.mapping if self.table.name_of(c.scale_a, ka))
        self.copy_button.setEnabled(names > 0)
        self.copy_button.setToolTip(self.copy_button.toolTip() if names else "no matched cluster of this table has a "
                                    "name (name them with Names…)")
        where = "this table" if other is self.table else (other_path.name if other_path else "the other table")
        self.status.setText(f"Compared with {where}: " + "; ".join(f"{c.title}: ARI {c.matching.ari:.3f}, "
                                                                   f"{c.matching.agreement:.1%} on matched clusters"
                                                                   for c in found))

    def copy_names(self) -> int | None:
        """Copy the names of the matched clusters into the other table and save it (atomically)."""
        from unmix.gui.views.dialogs import show_error

        if not self.comparisons or self.other is None:
            return None
        path = self.other_path
        try:
            copied = copy_names(self.table, self.other, self.comparisons, path)
        except UnmixError as exc:
            show_error(self, "Cannot copy the names", exc.message)
            return None
        for view, c in zip(self.views, self.comparisons, strict=True):  # partners now show their names
            c.rows = pair_rows(self.table, self.other, c.scale_a, c.scale_b, c.matching)
            for i, r in enumerate(c.rows):
                view.table.item(i, 2).setText(r.partner_label)
        where = f"saved in {path}" if path else "for this session only (the table has no file)"
        self.status.setText(f"{copied} name(s) copied into the other table, {where}")
        if self.other is self.table:
            self.names_saved.emit(path)
        jobs = getattr(self.window_, "jobs", None)
        if jobs is not None:
            jobs.append_log(f"Compare tables: {copied} name(s) copied, {where}")
        return copied


__all__ = ["Comparison", "CompareTablesDialog", "PairRow", "compare", "copy_names", "pair_rows", "same_file"]
