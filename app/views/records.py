"""Channel/segment list: instruments, their gap-free segments, and the gaps and overlaps found while reading."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from unmix.io import Record
from unmix.mars_time import format_lmst

KEY_ROLE = Qt.ItemDataRole.UserRole
SPAN_ROLE = Qt.ItemDataRole.UserRole + 1


def _utc(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _by_time(items: list) -> list[tuple]:
    """Interruptions grouped across channels: (first one, component letters) per distinct span, in time order."""
    groups: dict[tuple[float, float], list] = {}
    for it in items:
        groups.setdefault((round(it.start.timestamp, 3), round(it.end.timestamp, 3)), []).append(it)
    return [(its[0], "".join(sorted({i.channel[-1] for i in its}))) for _k, its in sorted(groups.items())]


class RecordList(QWidget):
    """Tree: instrument → segments (span, rate, samples) → gaps/overlaps. Emits ``selected(key, span or None)``."""

    selected = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Record", "UTC span", "Details"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)

    def clear(self) -> None:
        self.tree.clear()

    def add_records(self, label: str, records: list[Record], t_refs: dict[str, float]) -> None:
        """Append one loaded set (``label``), grouped by instrument key."""
        for key in sorted({r.key for r in records}):
            group = sorted((r for r in records if r.key == key), key=lambda r: r.starttime)
            t_ref = t_refs[key]
            first, last = group[0], group[-1]
            gaps = _by_time([g for r in group for g in r.gaps])
            overlaps = _by_time([o for r in group for o in r.overlaps])
            top = QTreeWidgetItem([
                f"{key}? ({first.components})",
                f"{_utc(first.starttime)} – {_utc(last.endtime)}",
                f"{label}: {len(group)} segment(s), {len(gaps)} gap(s), {len(overlaps)} overlap(s)",
            ])
            top.setData(0, KEY_ROLE, key)
            top.setData(0, SPAN_ROLE, None)
            top.setToolTip(0, "\n".join(sorted({s for r in group for s in r.sources})))
            top.setToolTip(1, f"LMST {format_lmst(first.starttime)} – {format_lmst(last.endtime)}")
            self.tree.addTopLevelItem(top)
            for i, rec in enumerate(group):
                item = QTreeWidgetItem([
                    f"segment {i + 1}",
                    f"{_utc(rec.starttime)} – {_utc(rec.endtime)}",
                    f"{rec.components}, {rec.sampling_rate:g} Hz, {rec.npts:,} samples"
                    + (f"; {'; '.join(rec.notes)}" if rec.notes else ""),
                ])
                item.setData(0, KEY_ROLE, key)
                item.setData(0, SPAN_ROLE, (rec.starttime.timestamp - t_ref, rec.endtime.timestamp - t_ref))
                item.setToolTip(1, f"LMST {format_lmst(rec.starttime)} – {format_lmst(rec.endtime)}")
                top.addChild(item)
            for kind, items, colour in (("gap", gaps, "#777777"), ("overlap", overlaps, "#b86e00")):
                for it, channels in items:
                    child = QTreeWidgetItem([
                        f"{kind} {channels}",
                        f"{_utc(it.start)} – {_utc(it.end)}",
                        f"{abs(it.duration):.2f} s, {abs(it.samples)} samples"
                        + ("" if it.identical is None else (", same samples" if it.identical else ", differing")),
                    ])
                    child.setForeground(0, QBrush(QColor(colour)))
                    child.setData(0, KEY_ROLE, key)
                    pad = max(abs(it.duration), 10.0)
                    child.setData(0, SPAN_ROLE, (it.start.timestamp - t_ref - pad, it.end.timestamp - t_ref + pad))
                    top.addChild(child)
            top.setExpanded(len(group) + len(gaps) + len(overlaps) <= 12)
        self.tree.resizeColumnToContents(0)
        self.tree.setColumnWidth(0, self.tree.columnWidth(0) + 8)
        self.tree.resizeColumnToContents(1)

    def select_key(self, key: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, KEY_ROLE) == key:
                self.tree.setCurrentItem(item)
                return

    def keys(self) -> list[str]:
        return [self.tree.topLevelItem(i).data(0, KEY_ROLE) for i in range(self.tree.topLevelItemCount())]

    def _selection_changed(self) -> None:
        items = self.tree.selectedItems()
        if items:
            self.selected.emit(items[0].data(0, KEY_ROLE), items[0].data(0, SPAN_ROLE))
