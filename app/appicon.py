"""The application's icon and desktop metadata, found wherever Unmix runs from.

The files live in the top-level ``resources/`` folder (the design card's), installed as the package
``unmix.gui.resources`` (pyproject ``package-dir``), so :mod:`importlib.resources` finds them in a source checkout,
an editable install, a wheel and the PyInstaller bundle (the spec copies the folder to ``unmix/gui/resources``).
"""

from __future__ import annotations

import contextlib
import sys
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QIcon

APP_ID = "io.github.unmix.Unmix"
"""Reverse-DNS id shared by the desktop entry, the AppStream metadata and Qt's desktop file name."""
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resource_path(name: str) -> Path | None:
    """Path of ``resources/<name>`` ('icons/unmix.svg'), None when it is not there."""
    candidates = []
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        candidates.append(Path(str(resources.files("unmix.gui.resources").joinpath(name))))
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates += [Path(frozen) / "unmix" / "gui" / "resources" / name, Path(frozen) / "resources" / name]
    return next((p for p in candidates if p.is_file()), None)


def app_icon() -> QIcon:
    """The Unmix icon: the PNG sizes (crisp at small sizes) and the SVG for anything larger; empty if missing."""
    icon = QIcon()
    for n in ICON_SIZES:
        path = resource_path(f"icons/unmix-{n}.png")
        if path is not None:
            icon.addFile(str(path))
    svg = resource_path("icons/unmix.svg")
    if svg is not None and icon.isNull():
        icon.addFile(str(svg))
    return icon
