"""Forms of the built-in jobs: "Load files" and "Generate synthetic record"."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import ConfigError
from unmix.gui.registry import JobRequest, JobSpec
from unmix.gui.tasks import generate_synthetic, load_files


def _apply_loaded(window: Any, result: Any) -> None:
    window.add_loaded(result)


class LoadForm(QWidget):
    """A list of files and folders to read."""

    def __init__(self, window: Any = None) -> None:
        super().__init__()
        self.window = window
        self.paths = QListWidget()
        self.paths.setMaximumHeight(90)
        add_files, add_dir, clear = QPushButton("Add files…"), QPushButton("Add folder…"), QPushButton("Clear")
        add_files.clicked.connect(lambda: self._add(self.window.ask_files() if self.window else []))
        add_dir.clicked.connect(lambda: self._add(self.window.ask_folder() if self.window else []))
        clear.clicked.connect(self.paths.clear)
        buttons = QHBoxLayout()
        for b in (add_files, add_dir, clear):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.paths)
        layout.addLayout(buttons)

    def _add(self, paths: list[str]) -> None:
        for p in paths:
            self.paths.addItem(p)

    def request(self) -> JobRequest:
        paths = [self.paths.item(i).text() for i in range(self.paths.count())]
        if not paths:
            raise ConfigError("add at least one file or folder to load")
        return load_request(paths)


def load_request(paths: list[str]) -> JobRequest:
    return JobRequest("Load files", load_files, {"paths": list(paths)}, _apply_loaded)


class SyntheticForm(QWidget):
    """Duration (sols or hours), seed, number of gaps and first sol of a synthetic InSight-like record."""

    def __init__(self, window: Any = None) -> None:
        super().__init__()
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.01, 100.0)
        self.duration.setDecimals(2)
        self.duration.setValue(1.0)
        self.unit = QComboBox()
        self.unit.addItems(["sols", "hours"])
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.gaps = QSpinBox()
        self.gaps.setRange(0, 100)
        self.start_sol = QSpinBox()
        self.start_sol.setRange(0, 1500)
        self.start_sol.setValue(200)
        row = QHBoxLayout()
        row.addWidget(self.duration, 1)
        row.addWidget(self.unit)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Duration", row)
        form.addRow("Seed", self.seed)
        form.addRow("Gaps", self.gaps)
        form.addRow("First sol", self.start_sol)

    def set_values(self, duration: float, unit: str = "sols", seed: int = 0, gaps: int = 0) -> None:
        self.duration.setValue(duration)
        self.unit.setCurrentText(unit)
        self.seed.setValue(seed)
        self.gaps.setValue(gaps)

    def request(self) -> JobRequest:
        value = self.duration.value()
        hours = value if self.unit.currentText() == "hours" else None
        return synthetic_request(sols=value if hours is None else 1.0, hours=hours, seed=self.seed.value(),
                                 gaps=self.gaps.value(), start_sol=self.start_sol.value())


def synthetic_request(**kwargs: Any) -> JobRequest:
    return JobRequest("Generate synthetic record", generate_synthetic, kwargs, _apply_loaded)


LOAD = JobSpec("load", "Load files", LoadForm, order=10)
SYNTHETIC = JobSpec("synthetic", "Generate synthetic record", SyntheticForm, order=20)
JOBS = (LOAD, SYNTHETIC)
