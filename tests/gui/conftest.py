"""GUI test setup: headless Qt, isolated QSettings, captured message boxes, screenshot folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

_MISSING = [m for m in ("PySide6", "pyqtgraph", "pytestqt") if importlib.util.find_spec(m) is None]
if _MISSING:
    collect_ignore_glob = ["test_*.py"]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
RAW_S0235 = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"


@pytest.fixture
def prefs(tmp_path):
    """Preferences in an INI file of this test only, so tests never share or touch the user's settings."""
    from PySide6.QtCore import QSettings

    from unmix.gui.settings import Preferences

    return Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def errors(monkeypatch):
    """Message boxes are recorded (title, text, detailed text) instead of blocking."""
    from PySide6.QtWidgets import QMessageBox

    seen: list[tuple[str, str, str]] = []

    def fake_exec(box):
        seen.append((box.windowTitle(), box.text(), box.detailedText()))
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    return seen


@pytest.fixture
def window(qtbot, prefs, errors):
    """A shown main window with isolated settings; background jobs are cancelled at the end."""
    import pyqtgraph as pg

    from unmix.gui.main_window import MainWindow
    from unmix.gui.workers import cancel_all

    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    win = MainWindow(prefs)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    cancel_all(10000)


@pytest.fixture
def raw_file(insight) -> Path:
    path = insight / RAW_S0235
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def screenshot(qtbot):
    """``screenshot(widget, name)`` saves ``tests/screenshots/<name>.png`` once pending layouts have run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(widget, name: str) -> Path:
        qtbot.wait(80)
        path = SCREENSHOTS / f"{name}.png"
        assert widget.grab().save(str(path))
        return path

    return save


@pytest.fixture
def load(qtbot):
    """``load(window, paths)`` opens ``paths`` and waits for the load job and the first spectrogram."""

    def run(win, paths, timeout: int = 30000) -> None:
        with qtbot.waitSignals([win.jobs.job_finished, win.spectrogram_shown], timeout=timeout):
            win.open_paths([str(p) for p in paths])

    return run
