"""Units bar of the browser: counts or physical units (response removed to VEL/ACC/DISP with a StationXML file),
U/V/W → Z/N/E rotation, and amplitude (gain) buttons; the conversion itself runs in a worker (``unmix.gui.units``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from unmix.errors import ConfigError
from unmix.gui.units import UNITS, Conversion


class UnitsBar(QWidget):
    """Output (counts, VEL, ACC, DISP), the response file, Z/N/E rotation; emits ``changed(Conversion)``."""

    changed = Signal(object)
    gain_requested = Signal(float)  # factor for every row (1.0: reset)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.response: str | None = None
        self.output_combo = QComboBox()
        for output, unit in UNITS.items():
            self.output_combo.addItem("Counts" if output == "COUNTS" else f"{output} ({unit})", output)
        self.output_combo.setToolTip("Remove the instrument response (needs a StationXML/RESP file)")
        self.rotate_check = QCheckBox("Z/N/E")
        self.rotate_check.setToolTip("Rotate U/V/W to Z/N/E with the response file's azimuths and dips")
        self.response_button = QToolButton()
        self.response_button.setText("Response…")
        self.response_button.setToolTip("Choose the StationXML/RESP file of the record")
        self.response_label = QLabel("no response file")
        self.response_label.setStyleSheet("color: #666;")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(QLabel("Units"))
        layout.addWidget(self.output_combo)
        layout.addWidget(self.rotate_check)
        layout.addWidget(self.response_button)
        layout.addWidget(self.response_label, 1)
        layout.addWidget(QLabel("Amplitude"))
        for text, tip, factor in (("×2", "Amplitude zoom in, every row (↑; Shift+wheel over a row: that row)", 2.0),
                                  ("÷2", "Amplitude zoom out, every row (↓)", 0.5),
                                  ("Fit", "Fit every row to its data again (0)", 1.0)):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _c=False, f=factor: self.gain_requested.emit(f))
            layout.addWidget(button)
        for w in self.findChildren(QWidget):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.output_combo.currentIndexChanged.connect(self._changed)
        self.rotate_check.toggled.connect(self._changed)
        self.response_button.clicked.connect(self.choose_response)
        self._refresh()

    def conversion(self) -> Conversion:
        """The conversion chosen; counts when the choice is incomplete (no response file)."""
        try:
            return Conversion(self.output_combo.currentData(), self.response, self.rotate_check.isChecked())
        except ConfigError:
            return Conversion()

    def set_conversion(self, output: str = "COUNTS", response: str | None = None, rotate: bool = False) -> None:
        """Set every control at once (one ``changed``); unknown outputs fall back to counts."""
        self.response = response or None
        for w in (self.output_combo, self.rotate_check):
            w.blockSignals(True)
        index = self.output_combo.findData(output)
        self.output_combo.setCurrentIndex(max(index, 0))
        self.rotate_check.setChecked(bool(rotate))
        for w in (self.output_combo, self.rotate_check):
            w.blockSignals(False)
        self._changed()

    def choose_response(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Response file (StationXML, RESP, dataless)", self.response or "",
                                              "StationXML (*.xml);;All files (*)")
        if path:
            self.response = path
            self._changed()

    def _refresh(self) -> None:
        physical = self.output_combo.currentData() != "COUNTS"
        self.rotate_check.setEnabled(physical and self.response is not None)
        if self.response:
            self.response_label.setText(Path(self.response).name)
            self.response_label.setToolTip(self.response)
        else:
            self.response_label.setText("no response file: choose one for physical units")

    def _changed(self, *_args) -> None:
        if self.output_combo.currentData() != "COUNTS" and self.response is None and self.isVisible():
            self.choose_response()
            if self.response is None:
                self.output_combo.blockSignals(True)
                self.output_combo.setCurrentIndex(0)
                self.output_combo.blockSignals(False)
        if self.output_combo.currentData() == "COUNTS" and self.rotate_check.isChecked():
            self.rotate_check.blockSignals(True)
            self.rotate_check.setChecked(False)
            self.rotate_check.blockSignals(False)
        self._refresh()
        self.changed.emit(self.conversion())

    def project_parameters(self) -> dict:
        conv = self.conversion()
        if conv.identity and not self.response:
            return {}
        return {"units": conv.output, "response": self.response, "rotate": conv.rotate}
