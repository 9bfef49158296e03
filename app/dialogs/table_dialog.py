"""What the dialogs on a cluster table (names, compare, generate) share: how they are opened for the main window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog


class TableDialog(QDialog):
    """A dialog built as ``cls(table, path, window, scale)`` and opened window-modal by :meth:`open_for`."""

    @classmethod
    def open_for(cls, window: Any, table, path: str | Path | None, scale: int | None = None):
        """Open a window-modal dialog for the main window's table."""
        dialog = cls(table, path, window, scale)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()
        return dialog
