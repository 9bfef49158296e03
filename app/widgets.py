"""Small reusable widgets for narrow docks: paths elided in the middle, sample counts shown with their duration."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QLabel, QLineEdit, QSpinBox, QStyle, QStyleOptionFrame, QWidget

DEFAULT_RATE = 20.0
"""Sampling rate (sps) assumed for the seconds shown beside sample counts when no record is open (InSight VBB BH)."""


def duration_text(seconds: float) -> str:
    """Short duration: '51.2 s', '6.8 min', '1.82 h'."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def current_rate(window: Any) -> float:
    """Sampling rate of the main window's current record, else :data:`DEFAULT_RATE`."""
    records = getattr(window, "records", {}) or {}
    key = getattr(window, "current_key", None)
    if key in records and records[key]:
        return float(records[key][0].sampling_rate)
    return DEFAULT_RATE


class ElidedPathEdit(QLineEdit):
    """A line edit for paths: while not being edited, a path too long for the field is drawn elided in the middle
    (``/home/…/results/features.h5``), so that the file name stays visible; the tooltip holds the whole path
    (the typed one, else the default shown as placeholder). Editing shows the real text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.textChanged.connect(lambda _t: self._update_tooltip())

    def full_text(self) -> str:
        """The path shown: the typed text, else the placeholder (default)."""
        return self.text() or self.placeholderText()

    def setPlaceholderText(self, text: str) -> None:  # noqa: N802
        super().setPlaceholderText(text)
        self._update_tooltip()

    def _update_tooltip(self) -> None:
        self.setToolTip(self.full_text())
        self.update()

    def _text_rect(self, option: QStyleOptionFrame):
        rect = self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self)
        margins = self.textMargins()
        return rect.adjusted(margins.left() + 2, margins.top(), -margins.right() - 2, -margins.bottom())

    def elided_text(self) -> str:
        """What is drawn when the field has no focus ('' when the whole path fits and Qt draws it)."""
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        width = self._text_rect(option).width()
        full = self.full_text()
        if not full or self.fontMetrics().horizontalAdvance(full) <= width:
            return ""
        return self.fontMetrics().elidedText(full, Qt.TextElideMode.ElideMiddle, width)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        elided = "" if self.hasFocus() else self.elided_text()
        if not elided:
            super().paintEvent(event)
            return
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        painter = QPainter(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelLineEdit, option, painter, self)
        role = QPalette.ColorRole.Text if self.text() else QPalette.ColorRole.PlaceholderText
        painter.setPen(self.palette().color(role))
        painter.drawText(self._text_rect(option), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                         elided)
        painter.end()


class SamplesSpinBox(QSpinBox):
    """A spin box of samples whose suffix gives the duration at the record's rate: ``1024 = 51.2 s``.

    A drop-in for a plain ``QSpinBox`` (same value API); call :meth:`set_rate` when the current record changes.
    """

    def __init__(self, lo: int, hi: int, value: int, rate: float = DEFAULT_RATE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rate = float(rate)
        self.setRange(lo, hi)
        self.valueChanged.connect(lambda _v: self._update_suffix())
        self.setValue(value)
        self._update_suffix()

    def set_rate(self, rate: float | None) -> None:
        self.rate = float(rate) if rate else DEFAULT_RATE
        self._update_suffix()

    def seconds(self) -> float:
        return self.value() / self.rate

    def _update_suffix(self) -> None:
        self.setSuffix(f"  = {duration_text(self.seconds())}")
        self.setToolTip(f"{self.value()} samples = {self.seconds():g} s at {self.rate:g} sps")


def scales_text(scales: Iterable[int], rate: float) -> str:
    """Durations of sample counts at ``rate``: '51.2 s, 3.41 min, 13.7 min @ 20 sps'."""
    return ", ".join(duration_text(int(s) / rate) for s in scales) + f" @ {rate:g} sps"


class SecondsLabel(QLabel):
    """A label under a comma-separated list of sample counts (e.g. the scales field) giving their durations."""

    def __init__(self, edit: QLineEdit, rate: float = DEFAULT_RATE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit, self.rate = edit, float(rate)
        self.setWordWrap(True)
        self.setStyleSheet("color: #555;")
        edit.textChanged.connect(lambda _t: self._update())
        self._update()

    def set_rate(self, rate: float | None) -> None:
        self.rate = float(rate) if rate else DEFAULT_RATE
        self._update()

    def _update(self) -> None:
        try:
            scales = [int(s) for s in self.edit.text().replace(" ", "").split(",") if s]
        except ValueError:
            self.setText("")
            return
        self.setText(scales_text(scales, self.rate) if scales else "")
