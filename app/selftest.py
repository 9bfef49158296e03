"""The GUI part of ``unmix --self-test``: render the main window offscreen with a record loaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


class GuiCheckFailed(RuntimeError):
    """The main window could not be shown, loaded or captured."""


def render_main_window(mseed: str | Path, out: Path) -> str:
    """The main window rendered offscreen with the miniSEED record loaded; saves a screenshot into ``out``."""
    if os.environ.get("QT_QPA_PLATFORM") is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        from PySide6.QtCore import QEventLoop, QSettings, QTimer
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        raise GuiCheckFailed(f"not available: PySide6 is missing ({exc})") from None
    import pyqtgraph as pg

    from unmix.gui.main_window import MainWindow
    from unmix.gui.settings import Preferences
    from unmix.gui.workers import cancel_all

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "unmix"])
    platform_name = app.platformName()
    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    prefs = Preferences(QSettings(str(out / "gui-settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(prefs)
    failures: list[str] = []
    window.jobs.job_failed.connect(lambda title, message, _details: failures.append(f"{title}: {message}"))
    try:
        window.resize(1400, 900)
        window.show()
        seen: set[str] = set()
        loop = QEventLoop()

        def mark(name: str) -> None:
            seen.add(name)
            if {"loaded", "spectrogram"} <= seen:
                loop.quit()

        def close_dialogs() -> None:  # an error dialog would wait for a click that never comes
            box = QApplication.activeModalWidget()
            if box is not None:
                text = box.text() if hasattr(box, "text") else ""
                failures.append(f"dialog {box.windowTitle()!r}: {text}")
                box.close()
                loop.quit()

        guard = QTimer(window)
        guard.timeout.connect(close_dialogs)
        guard.start(250)
        window.jobs.job_finished.connect(lambda *_: mark("loaded"))
        window.spectrogram_shown.connect(lambda *_: mark("spectrogram"))
        window.jobs.job_failed.connect(lambda *_: loop.quit())
        QTimer.singleShot(60000, loop.quit)
        window.open_paths([str(mseed)])
        loop.exec()
        if failures:
            raise GuiCheckFailed(f"loading failed in the GUI: {failures[0]}")
        if {"loaded", "spectrogram"} - seen:
            raise GuiCheckFailed(f"the GUI did not finish loading within 60 s (seen: {sorted(seen) or 'nothing'})")
        wait = QEventLoop()
        QTimer.singleShot(200, wait.quit)
        wait.exec()
        image = window.grab().toImage()
        path = out / "main-window.png"
        if not image.save(str(path)):
            raise GuiCheckFailed(f"could not save the screenshot {path}")
        small = image.scaled(140, 90)
        grey = np.array([[small.pixelColor(x, y).value() for x in range(small.width())]
                         for y in range(small.height())], float)
        if grey.std() < 5:
            raise GuiCheckFailed(f"the screenshot is blank (pixel std {grey.std():.1f})")
        if not window.displays:
            raise GuiCheckFailed("the window shows no record after loading")
        return (f"platform {platform_name}, {len(window.displays)} record shown, "
                f"{image.width()}×{image.height()} → {path.name}")
    finally:
        cancel_all(10000)
        window.close()
        window.deleteLater()
