"""Small dialogs: settings (compute device), keyboard help, error messages."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from unmix.gui.settings import DEVICES, Preferences, cuda_available
from unmix.gui.views.waveform import SHORTCUTS


class SettingsDialog(QDialog):
    """Preferences stored in QSettings: the compute device for the ML pipeline."""

    def __init__(self, preferences: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.preferences = preferences
        self.device = QComboBox()
        for name in DEVICES:
            text = {"auto": "auto (CUDA when available)", "cpu": "CPU", "cuda": "CUDA"}[name]
            self.device.addItem(text, name)
        self.device.setCurrentIndex(DEVICES.index(preferences.device))
        note = QLabel("CUDA is available." if cuda_available() else "PyTorch sees no CUDA GPU: CPU will be used.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Compute device", self.device)
        form.addRow("", note)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def accept(self) -> None:
        self.preferences.device = self.device.currentData()
        super().accept()


class ShortcutsDialog(QDialog):
    """Keyboard shortcuts of the waveform browser, from the one shortcut table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(["Key", "Action"])
        table.verticalHeader().setVisible(False)
        for row, s in enumerate(SHORTCUTS):
            table.setItem(row, 0, QTableWidgetItem(s.label))
            table.setItem(row, 1, QTableWidgetItem(s.description))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Mouse: drag to pan, wheel or right-drag to zoom the time axis."))
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(420, 360)


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """Modal error message; a traceback or other long text goes behind "Show Details…"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.exec()
