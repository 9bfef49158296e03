"""Forms of the built-in jobs: "Load files" and "Generate synthetic record"; the response-removal and rotation fields
of the Features form (:class:`ResponseFields`, mounted by ``unmix.gui.panels.pipeline.FeaturesForm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import ConfigError
from unmix.gui.registry import JobRequest, JobSpec
from unmix.gui.tasks import generate_synthetic, load_files
from unmix.gui.widgets import ElidedPathEdit


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


def load_request(paths: list[str], groups: list[list[str]] | None = None) -> JobRequest:
    """Read ``paths``; with ``groups`` (a project's loads), each group as its own load (:func:`load_files`)."""
    kwargs = {"paths": list(paths)} | ({"groups": [list(g) for g in groups]} if groups else {})
    return JobRequest("Load files", load_files, kwargs, _apply_loaded)


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


RESPONSE_OUTPUTS = {"VEL": "m/s", "ACC": "m/s²", "DISP": "m"}
"""``unmix features --output`` choices (``FeatureConfig.response_output``) and their units."""
ZNE_OF = dict(zip("UVW", "ZNE", strict=True))
"""The component a U/V/W letter becomes in the Components field when rotation is switched on (and back)."""


def rotated_components(components: str, rotate: bool) -> str:
    """The Components field for rotation on (U/V/W → Z/N/E, letter by letter) or off (back); others unchanged."""
    mapping = ZNE_OF if rotate else {v: k for k, v in ZNE_OF.items()}
    return "".join(mapping.get(c, c) for c in components.upper())


class ResponseFields(QWidget):
    """Response removal (a StationXML/RESP file, output VEL/ACC/DISP) and U/V/W → Z/N/E rotation of the features,
    as ``unmix features --response FILE --output VEL --rotate`` with the CLI's defaults (no file: counts).

    ``options()`` gives the :class:`~unmix.features.FeatureConfig` fields (``response``, ``response_output``,
    ``rotate``); ``rotate_toggled(on)`` lets the form switch its Components field (:func:`rotated_components`).
    """

    rotate_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from unmix.pipeline import default_features

        start = default_features()
        self.response = ElidedPathEdit()
        self.response.setPlaceholderText("none: features of the counts as recorded")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("StationXML/RESP file: remove the instrument response first (--response)")
        browse.clicked.connect(self.choose_response)
        self.output = QComboBox()
        for output, unit in RESPONSE_OUTPUTS.items():
            self.output.addItem(f"{output} ({unit})", output)
        self.output.setCurrentIndex(max(self.output.findData(start.response_output), 0))
        self.output.setToolTip("physical quantity after response removal (--output)")
        self.rotate = QCheckBox("rotate U/V/W → Z/N/E")
        self.rotate.setChecked(start.rotate)
        self.rotate.setToolTip("rotate with the response file's azimuths and dips (--rotate); Components become ZNE")
        self.rotate.toggled.connect(self.rotate_toggled)
        self.response.textChanged.connect(self._refresh)
        file_row, output_row = QHBoxLayout(), QHBoxLayout()  # two rows: the path stays readable in a narrow dock
        file_row.addWidget(self.response, 1)
        file_row.addWidget(browse)
        output_row.addWidget(self.output)
        output_row.addWidget(self.rotate, 1)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        rows.addLayout(file_row)
        rows.addLayout(output_row)
        self._refresh()

    def choose_response(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Response file (StationXML, RESP, dataless)",
                                              self.response.text(), "StationXML (*.xml);;All files (*)")
        if path:
            self.response.setText(path)

    def _refresh(self, *_args) -> None:
        given = bool(self.response.text().strip())
        self.output.setEnabled(given)
        self.rotate.setEnabled(given)

    def options(self) -> dict:
        """``response`` (absolute path, or None), ``response_output``, ``rotate``; a missing file or rotation
        without one is a :class:`ConfigError` naming the problem in one line."""
        text = self.response.text().strip()
        if not text:
            if self.rotate.isChecked():
                raise ConfigError("rotation to Z/N/E needs a response file (StationXML/RESP with the orientations)")
            return {"response": None, "response_output": self.output.currentData(), "rotate": False}
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError("response file not found", path)
        return {"response": str(path.resolve()), "response_output": self.output.currentData(),
                "rotate": self.rotate.isChecked()}

    def values(self) -> dict:
        """What the project file keeps (the path as typed)."""
        return {"response": self.response.text().strip(), "response_output": self.output.currentData(),
                "rotate": self.rotate.isChecked()}

    def set_values(self, response: str | None = None, response_output: str | None = None,
                   rotate: bool | None = None) -> None:
        """Set the fields given (None leaves one as it is); an unknown output is ignored."""
        if response is not None:
            self.response.setText(str(response))
        if response_output in RESPONSE_OUTPUTS:
            self.output.setCurrentIndex(self.output.findData(response_output))
        if rotate is not None:
            self.rotate.blockSignals(True)  # restoring a project: its Components field is restored as saved
            self.rotate.setChecked(bool(rotate))
            self.rotate.blockSignals(False)


LOAD = JobSpec("load", "Load files", LoadForm, order=10)
SYNTHETIC = JobSpec("synthetic", "Generate synthetic record", SyntheticForm, order=20)
JOBS = (LOAD, SYNTHETIC)
