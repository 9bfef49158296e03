"""Forms of the pipeline jobs: Features, Train, Cluster, Separate, Export.

Each form turns its fields into a :class:`~unmix.gui.registry.JobRequest` whose function lives in
:mod:`unmix.gui.tasks` (which calls the computation); results go to the main window's
:class:`~unmix.gui.panels.results.ResultsController` (``window.results``), which records their paths in the project.
Empty path fields mean "the default in the project's results folder".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import ConfigError
from unmix.features.config import NORMALIZE_MODES
from unmix.gui.option_widgets import OptionsForm
from unmix.gui.registry import JobRequest, JobSpec
from unmix.gui.tasks import compute_features, separate_record
from unmix.gui.views.forms import ResponseFields, rotated_components
from unmix.gui.widgets import ElidedPathEdit, SamplesSpinBox, SecondsLabel, current_rate
from unmix.pipeline import DEFAULT_PRESET, cluster_spans, default_features, default_model
from unmix.separation.registry import MethodSpec, method_spec, methods

_F = default_features()
FEATURE_DEFAULTS = {"window": _F.window, "hop": _F.hop, "scales": ",".join(map(str, _F.scales)), "J": _F.J, "Q": _F.Q,
                    "model": _F.model, "components": _F.components, "normalize": _F.normalize,
                    "glitch_evidence": _F.glitch_evidence}
"""The Features form's initial values: the pipeline layer's defaults (those of ``unmix features``)."""
PRESET_LABELS = {"small": "small (CPU, minutes)", "paper": "paper (published, GPU)"}
"""How the Train form names each preset of ``unmix.model.PRESETS``."""
PRIOR_METHODS = tuple(name for name, spec in methods().items() if "prior" in spec.uses)
"""Methods whose prior comes from background cluster(s) of the cluster table."""
TARGETS = {"record": ("whole record", "the record shown in the browser"),
           "span": ("visible span", "the time span visible in the browser"),
           "cluster": ("cluster windows", "every window of the target cluster(s) at the scale, merged into spans")}
METHODS = tuple((name, spec.title, spec.description) for name, spec in
                sorted(methods().items(), key=lambda item: "prior" not in item[1].uses))
"""(key, label, tooltip) of every method of the registry, those that take a prior first (the default: scatcov)."""


def _options_tip(method: str, form: OptionsForm) -> str:
    """The tooltip of "Other options": the method's option keys, those without a field of their own first."""
    try:
        keys = ", ".join(form.spec.option_names())
    except ConfigError as exc:
        return str(exc)
    rest = ", ".join(o.name for o in form.rest) or "none"
    return (f"more options of {method} as KEY=VALUE; KEY=VALUE (JSON values); they override the fields above. "
            f"Without a field: {rest}. Keys: {keys}")


def _method_spec(name: str, listed: MethodSpec) -> MethodSpec:
    """The registry entry of ``name`` (a plugin's own :class:`MethodSpec` when it has one); a plugin that cannot be
    loaded keeps its listing, and running it says why."""
    try:
        return method_spec(name)
    except ConfigError:
        return listed


class PathField(QWidget):
    """A path with a browse button; empty means the default shown as placeholder."""

    def __init__(self, kind: str = "save", caption: str = "", filter_: str = "") -> None:
        super().__init__()
        self.kind, self.caption, self.filter = kind, caption, filter_
        self.edit = ElidedPathEdit()
        button = QToolButton()
        button.setText("…")
        button.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(button)

    def _browse(self) -> None:
        start = self.text() or self.edit.placeholderText()
        if self.kind == "dir":
            path = QFileDialog.getExistingDirectory(self, self.caption, start)
        elif self.kind == "open":
            path, _ = QFileDialog.getOpenFileName(self, self.caption, start, self.filter)
        else:
            path, _ = QFileDialog.getSaveFileName(self, self.caption, start, self.filter)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()

    def set_text(self, text: str | None) -> None:
        self.edit.setText(text or "")

    def set_default(self, text: str | Path | None) -> None:
        self.edit.setPlaceholderText(str(text) if text else "")

    def value(self) -> str:
        """The typed path, else the default; '' when neither."""
        return self.text() or self.edit.placeholderText()


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box


def _results(window: Any):
    results = getattr(window, "results", None)
    if results is None:
        raise ConfigError("the pipeline needs the main window")
    return results


def _device(window: Any) -> str:
    prefs = getattr(window, "preferences", None)
    return prefs.device if prefs is not None else "auto"


class PipelineForm(QWidget):
    """Base: ``values()``/``set_values()`` for the project file, ``refresh()`` when results change."""

    key = ""

    def __init__(self, window: Any = None) -> None:
        super().__init__()
        self.window = window
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)

    def values(self) -> dict:
        return {}

    def set_values(self, **values: Any) -> None:
        """Set fields by name (unknown names are ignored, so older project files still open)."""
        for name, value in values.items():
            widget = getattr(self, name, None)
            if isinstance(widget, PathField):
                widget.set_text(value if isinstance(value, str) else None)
            elif isinstance(widget, QSpinBox | QDoubleSpinBox):
                if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e12:
                    # a project file's number outside the field's range is clamped (Qt would overflow on int32)
                    value = min(max(value, widget.minimum()), widget.maximum())
                    widget.setValue(int(value) if isinstance(widget, QSpinBox) else float(value))
            elif isinstance(widget, QComboBox):
                index = widget.findData(value)
                widget.setCurrentIndex(index if index >= 0 else max(widget.findText(str(value)), 0))
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QLineEdit):
                widget.setText(str(value))
                widget.setModified(True)  # a value given (or restored) counts as the user's, not a default

    def refresh(self) -> None:
        """Update defaults and choices from the window's current results."""

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.refresh()


class FeaturesForm(PipelineForm):
    """Window, hop, scales, J, Q, model, components, response removal and rotation of the feature store, and where
    it goes."""

    key = "features"

    def __init__(self, window: Any = None) -> None:
        super().__init__(window)
        self.store = PathField("save", "Feature store", "HDF5 (*.h5)")
        self.window_size = SamplesSpinBox(256, 2**22, FEATURE_DEFAULTS["window"])
        self.hop = SamplesSpinBox(1, 2**22, FEATURE_DEFAULTS["hop"])
        self.scales = QLineEdit(FEATURE_DEFAULTS["scales"])
        self.scales.setToolTip("comma-separated scales in samples; each a multiple of the smallest")
        self.scales_seconds = SecondsLabel(self.scales)
        self.normalize = QComboBox()
        for mode in NORMALIZE_MODES:
            self.normalize.addItem("none" if mode is None else mode, mode)
        self.normalize.setCurrentIndex(self.normalize.findData(FEATURE_DEFAULTS["normalize"]))
        self.normalize.setToolTip("none: keep each window's level (quiet nights and windy days stay apart); "
                                  "each_ps: divide each channel by its RMS over the window, as the published code")
        self.glitch_evidence = QCheckBox("keep glitch evidence")
        self.glitch_evidence.setChecked(FEATURE_DEFAULTS["glitch_evidence"])
        self.glitch_evidence.setToolTip("also store per window the share of its energy the template deglitcher "
                                        "explains: the model's glitch class reads it (one template run per input)")
        self.J = _spin(1, 16, FEATURE_DEFAULTS["J"])
        self.Q = _spin(1, 8, FEATURE_DEFAULTS["Q"])
        self.model = QComboBox()
        self.model.addItems(["scat+cov", "cov"])
        self.model.setCurrentText(FEATURE_DEFAULTS["model"])
        self.components = QLineEdit(FEATURE_DEFAULTS["components"])
        self.response_fields = ResponseFields()
        self.response_fields.rotate_toggled.connect(
            lambda on: self.components.setText(rotated_components(self.components.text(), on)))
        self.form.addRow("Store", self.store)
        self.form.addRow("Window (samples)", self.window_size)
        self.form.addRow("Hop (samples)", self.hop)
        self.form.addRow("Scales", self.scales)
        self.form.addRow("", self.scales_seconds)
        self.form.addRow("Normalise", self.normalize)
        self.form.addRow("Glitches", self.glitch_evidence)
        self.form.addRow("J / Q", _pair(self.J, self.Q))
        self.form.addRow("Model", self.model)
        self.form.addRow("Components", self.components)
        self.form.addRow("Response", self.response_fields)

    def values(self) -> dict:
        return {"store": self.store.text(), "window": self.window_size.value(), "hop": self.hop.value(),
                "scales": self.scales.text(), "J": self.J.value(), "Q": self.Q.value(),
                "model": self.model.currentText(), "components": self.components.text(),
                "normalize": self.normalize.currentText(), "glitch_evidence": self.glitch_evidence.isChecked(),
                **self.response_fields.values()}

    def set_values(self, **values: Any) -> None:
        if "window" in values:
            values["window_size"] = values.pop("window")
        if "normalize" in values:
            self.normalize.setCurrentText(str(values.pop("normalize") or "none"))
        self.response_fields.set_values(**{k: values.pop(k) for k in ("response", "response_output", "rotate")
                                           if k in values})
        super().set_values(**values)

    def refresh(self) -> None:
        results = getattr(self.window, "results", None)
        if results is not None:
            self.store.set_default(results.default_path("features.h5"))
        rate = current_rate(self.window)
        for widget in (self.window_size, self.hop, self.scales_seconds):
            widget.set_rate(rate)

    def config(self) -> dict:
        try:
            scales = tuple(int(s) for s in self.scales.text().replace(" ", "").split(",") if s)
        except ValueError:
            raise ConfigError(f"scales must be comma-separated integers, got {self.scales.text()!r}") from None
        return default_features(window=self.window_size.value(), hop=self.hop.value(), scales=scales,
                                J=self.J.value(), Q=self.Q.value(), model=self.model.currentText(),
                                components=self.components.text().strip().upper(),
                                normalize=self.normalize.currentData(),
                                glitch_evidence=self.glitch_evidence.isChecked(),
                                **self.response_fields.options()).to_dict()

    def request(self) -> JobRequest:
        _results(self.window)
        self.refresh()
        project = self.window.project
        out = self.store.value()
        if not out:
            raise ConfigError("choose where to write the feature store")
        return JobRequest("Features", compute_features,
                          {"inputs": list(project.inputs), "synthetic": [dict(s) for s in project.synthetic],
                           "out": out, "config": self.config(), "work_dir": str(Path(out).parent / "inputs"),
                           "device": _device(self.window)},
                          lambda window, report: window.results.features_done(report))


class TrainForm(PipelineForm):
    """Preset, epochs, clusters and seed of the model; an existing model file is reused unless retraining is asked."""

    key = "train"

    def __init__(self, window: Any = None) -> None:
        super().__init__(window)
        self.store = PathField("open", "Feature store", "HDF5 (*.h5)")
        self.model = PathField("save", "Model checkpoint", "Checkpoint (*.pt)")
        self.preset = QComboBox()
        for name, label in PRESET_LABELS.items():
            self.preset.addItem(label, name)
        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))
        start = default_model()
        self.epochs = _spin(1, 100000, start.epochs)
        self.clusters = _spin(2, 64, start.clusters)
        self.seed = _spin(0, 2**31 - 1, start.seed)
        self.retrain = QCheckBox("retrain")
        self.retrain.setToolTip("train anew even if the model file exists (otherwise it is reused or resumed)")
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.form.addRow("Feature store", self.store)
        self.form.addRow("Model", self.model)
        self.form.addRow("Preset", self.preset)
        self.form.addRow("Epochs", self.epochs)
        self.form.addRow("Clusters", self.clusters)
        self.form.addRow("Seed", self.seed)
        self.form.addRow("", self.retrain)

    def _preset_changed(self, _index: int) -> None:
        config = default_model(self.preset.currentData())
        self.epochs.setValue(config.epochs)
        self.clusters.setValue(config.clusters)
        self.seed.setValue(config.seed)

    def values(self) -> dict:
        return {"store": self.store.text(), "model": self.model.text(), "preset": self.preset.currentData(),
                "epochs": self.epochs.value(), "clusters": self.clusters.value(), "seed": self.seed.value()}

    def refresh(self) -> None:
        results = getattr(self.window, "results", None)
        if results is not None:
            self.store.set_default(results.paths.get("store") or results.default_path("features.h5"))
            self.model.set_default(results.default_path("model.pt"))

    def request(self) -> JobRequest:
        from unmix.gui.tasks import train_model

        _results(self.window)
        self.refresh()
        return JobRequest("Train", train_model,
                          {"store": self.store.value(), "out": self.model.value(), "preset": self.preset.currentData(),
                           "epochs": self.epochs.value(), "clusters": self.clusters.value(), "seed": self.seed.value(),
                           "device": _device(self.window), "overwrite": self.retrain.isChecked()},
                          lambda window, report: window.results.train_done(report))


class ClusterForm(PipelineForm):
    """Clusters of every window at every scale (``predict``), saved as a cluster table."""

    key = "cluster"

    def __init__(self, window: Any = None) -> None:
        super().__init__(window)
        self.store = PathField("open", "Feature store", "HDF5 (*.h5)")
        self.model = PathField("open", "Model checkpoint", "Checkpoint (*.pt)")
        self.table = PathField("save", "Cluster table", "HDF5 (*.h5)")
        self.recompute = QCheckBox("recompute")
        self.recompute.setToolTip("cluster again even if the table file exists (otherwise it is reused)")
        self.form.addRow("Feature store", self.store)
        self.form.addRow("Model", self.model)
        self.form.addRow("Table", self.table)
        self.form.addRow("", self.recompute)

    def values(self) -> dict:
        return {"store": self.store.text(), "model": self.model.text(), "table": self.table.text()}

    def refresh(self) -> None:
        results = getattr(self.window, "results", None)
        if results is not None:
            self.store.set_default(results.paths.get("store") or results.default_path("features.h5"))
            self.model.set_default(results.paths.get("model") or results.default_path("model.pt"))
            self.table.set_default(results.default_path("clusters.h5"))

    def request(self) -> JobRequest:
        from unmix.gui.tasks import cluster_windows

        _results(self.window)
        self.refresh()
        return JobRequest("Cluster", cluster_windows,
                          {"store": self.store.value(), "model": self.model.value(), "out": self.table.value(),
                           "device": _device(self.window), "overwrite": self.recompute.isChecked()},
                          lambda window, table: window.results.table_done(table))


class SeparateForm(PipelineForm):
    """Method and its options; for methods that take a prior (scatcov, hybrid) the background cluster(s) and scale of
    the prior; the target (current record, visible span, or every window of some clusters).

    The method's options are fields generated from its registry entry (:mod:`unmix.gui.option_widgets`), one
    sub-form per method, initialised to the registry defaults; a job gets only the options changed from them (plus
    the prior the form computes), so its provenance names what the user chose. Options without a field (tuples,
    objects) go in the "Other options" line, shown for methods that have such options."""

    key = "separate"
    LEGACY = ("n_prior", "max_iter", "freq", "residual")
    """Keys of the former hand-written fields: in an older project file they hold for every method that has them."""

    def __init__(self, window: Any = None) -> None:
        super().__init__(window)
        specs = {name: _method_spec(name, spec) for name, spec in methods().items()}
        self.specs = dict(sorted(specs.items(), key=lambda item: "prior" not in item[1].uses))
        self.method = QComboBox()
        for key, spec in self.specs.items():
            self.method.addItem(spec.title, key)
            self.method.setItemData(self.method.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole)
        self.background = QLineEdit("0")
        self.background.setToolTip("background cluster(s) whose statistics the background keeps: numbers or "
                                   "names, e.g. 0,3 or quiet night")
        self.scale = QComboBox()
        self.options: dict[str, OptionsForm] = {}
        """The generated option fields of every method."""
        self.method_box = QWidget()
        self._method_layout = QVBoxLayout(self.method_box)
        self._method_layout.setContentsMargins(0, 0, 0, 0)
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("KEY=VALUE; KEY=VALUE")
        self.target = QComboBox()
        for key, (text, tip) in TARGETS.items():
            self.target.addItem(text, key)
            self.target.setItemData(self.target.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.target_clusters = QLineEdit("1")
        self.target_clusters.setToolTip("for 'every window of the clusters': which clusters (numbers or names), "
                                        "e.g. 2, 2,5 or glitch")
        self.protect = QCheckBox("keep catalogue events")
        self.protect.setToolTip("inside every catalogue entry shown on the browser (File > Open catalogues…, kinds "
                                "ticked in its bar), e.g. the MQS marsquakes, only glitch and spike templates are "
                                "removed, whatever the method (unmix separate --protect)")
        self.form.addRow("Method", self.method)
        self.form.addRow("Background cluster(s)", self.background)
        self.form.addRow("Scale", self.scale)
        self.form.addRow(self.method_box)
        self.form.addRow("Other options", self.extra)
        self.form.addRow("Target", self.target)
        self.form.addRow("Target cluster(s)", self.target_clusters)
        self.form.addRow("Events", self.protect)
        self._label_width = max(self.fontMetrics().horizontalAdvance(text)
                                for text in ("Background cluster(s)", "Other options"))
        for key in self.specs:
            self.method_options(key)
        self.method.currentIndexChanged.connect(self._enable)
        self.target.currentIndexChanged.connect(self._enable)
        self._enable()

    def method_options(self, method: str | None = None) -> OptionsForm:
        """The generated option fields of ``method`` (default: the chosen one)."""
        method = method or self.method.currentData()
        if method not in self.options:
            form = OptionsForm(self.specs[method])
            form.align_labels(self._label_width)  # the generated fields line up with the form's own
            form.setVisible(method == self.method.currentData())
            self._method_layout.addWidget(form)
            self.options[method] = form
        return self.options[method]

    def _enable(self, *_args) -> None:
        method, target = self.method.currentData(), self.target.currentData()
        prior = "prior" in self.specs[method].uses
        for key, form in self.options.items():
            form.setVisible(key == method)
        # "Other options" only where some option has no field (or when it holds text, e.g. from an older project)
        form = self.options[method]
        self.extra.setToolTip(_options_tip(method, form))
        self.form.setRowVisible(self.extra, bool(form.rest or not form.fields or self.extra.text().strip()))
        for row, on in ((self.background, prior), (self.target_clusters, target == "cluster"),
                        (self.scale, prior or target == "cluster")):
            row.setEnabled(on)
            label = self.form.labelForField(row)
            if label is not None:
                label.setEnabled(on)

    def values(self) -> dict:
        return {"method": self.method.currentData(), "background": self.background.text(),
                "scale": self.scale.currentData(), "target": self.target.currentData(),
                "target_clusters": self.target_clusters.text(), "protect": self.protect.isChecked(),
                "extra": self.extra.text(),
                **{f"{key}.{name}": value for key, form in self.options.items()
                   for name, value in form.changed().items()}}

    def set_values(self, **values: Any) -> None:
        """Method options are ``METHOD.OPTION`` keys (flat, as project files hold only plain values). Values that
        name the ``method`` are a whole state: options they do not give return to the registry defaults. An option
        key without a method sets that option of the chosen method; the keys of the former fixed fields
        (:attr:`LEGACY`, in older project files) set it for every method that has it, as those fields did."""
        scale = values.pop("scale", None)
        loose = {k: values.pop(k) for k in list(values) if k not in ("method", "background", "target",
                                                                       "target_clusters", "extra", "protect")}
        super().set_values(**values)
        if "method" in values:
            for form in self.options.values():
                form.reset()
        method = self.method.currentData()
        for name, value in loose.items():
            key, dot, option = name.partition(".")
            if dot:  # METHOD.OPTION (an unknown method or option is ignored, as other unknown names)
                if key in self.specs:
                    self.method_options(key).set_values({option: value})
                continue
            targets = [k for k in self.specs if name in self.method_options(k).fields] if name in self.LEGACY else []
            for key in targets or [method]:
                self.method_options(key).set_values({name: value})
        self._enable()
        if scale is not None:
            self._wanted_scale = int(scale)
            self.refresh()

    def refresh(self) -> None:
        results = getattr(self.window, "results", None)
        table = getattr(results, "table", None)
        wanted = getattr(self, "_wanted_scale", None) or self.scale.currentData()
        scales = table.scales if table is not None else ()
        if [self.scale.itemData(i) for i in range(self.scale.count())] != list(scales):
            self.scale.clear()
            for s in scales:
                self.scale.addItem(str(s), int(s))
        index = self.scale.findData(wanted) if wanted is not None else -1
        if index >= 0:
            self.scale.setCurrentIndex(index)
            self._wanted_scale = None  # applied: from now on the combo box holds the choice
        if table is not None and not self.background.isModified() and self.scale.currentData() is not None:
            # default prior: the most populated cluster (the usual quiet background) at the chosen scale
            self.background.setText(str(int(table.occupancy(self.scale.currentData()).argmax())))

    def _extra(self, method: str) -> dict[str, Any]:
        """"Other options": ``KEY=VALUE`` pairs separated by ';', checked against the method's registry entry."""
        from unmix.separation.registry import parse_options

        pairs = [p.strip() for p in self.extra.text().split(";") if p.strip()]
        options = parse_options(pairs, "Other options")
        self.specs[method].check_options(options, "Other options")
        return options

    @staticmethod
    def _protected(window: Any) -> list[tuple[float, float]]:
        """The spans of the catalogue entries the browser shows (the events to keep)."""
        catalogs = getattr(window, "catalogs", None)
        entries = catalogs.selection.shown() if catalogs is not None else []
        if not entries:
            raise ConfigError("no catalogue events to keep: open a catalogue (File > Open catalogues…) and tick the "
                              "kinds to keep in its bar, or untick 'keep catalogue events'")
        return [(float(e.start.timestamp), float(e.end.timestamp)) for e in entries]

    def _clusters(self, edit: QLineEdit, what: str, table, scale: int) -> list[int]:
        """Cluster numbers and/or names ('2', 'quiet night', 'quiet night,2') at ``scale`` of ``table``."""
        try:
            return table.resolve(edit.text(), scale)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc.message}") from None

    def request(self) -> JobRequest:
        results = _results(self.window)
        window = self.window
        self.refresh()
        key = window.current_key
        if key is None or key not in window.records:
            raise ConfigError("open or generate a record to separate first")
        method, target = self.method.currentData(), self.target.currentData()
        table = results.table
        scale = self.scale.currentData()
        prior = "prior" in self.specs[method].uses
        options: dict[str, Any] = {}
        if prior or target == "cluster":
            if table is None:
                raise ConfigError("this needs a cluster table: run Cluster first (or open a project that has one)")
            if scale is None:
                raise ConfigError("choose a scale")
        if prior:
            background = self._clusters(self.background, "background cluster", table, scale)
            options.update(results.scatcov_options(background, scale))
        options.update(self.method_options(method).changed())  # only what differs from the registry's defaults
        options.update(self._extra(method))
        if self.protect.isChecked():
            options["protect"] = self._protected(window)
        stream = _stream(window.records[key])
        spans = None
        text = f"{key}, whole record"
        if target == "span":
            x0, x1 = window.waveform.x_range()
            t_ref = window.displays[key].t_ref
            spans = [(t_ref + x0, t_ref + x1)]
            text = f"{key}, visible span ({x1 - x0:.0f} s)"
        elif target == "cluster":
            clusters = self._clusters(self.target_clusters, "target cluster", table, scale)
            spans = cluster_spans(table, clusters, scale, key.split("#")[0])
            text = f"{key}, {len(spans)} span(s) of cluster(s) {', '.join(map(str, clusters))} at scale {scale}"
        return JobRequest("Separate", separate_record,
                          {"stream": stream, "method": method, "options": options, "spans": spans, "key": key,
                           "target": text},
                          lambda w, separated: w.results.separation_done(separated))


class ExportForm(PipelineForm):
    """Batch export (the code of ``unmix separate``): every input file is separated with the method and options of
    the last separation, and the chosen sources are written in the chosen format, with a provenance JSON."""

    key = "export"

    def __init__(self, window: Any = None) -> None:
        super().__init__(window)
        self.folder = PathField("dir", "Export folder")
        self.format = QComboBox()
        self.format.addItems(["MSEED", "SAC"])
        self.sources_row = QWidget()
        self.sources_layout = QHBoxLayout(self.sources_row)
        self.sources_layout.setContentsMargins(0, 0, 0, 0)
        self.source_boxes: dict[str, QCheckBox] = {}
        self.overwrite = QCheckBox("overwrite")
        self.overwrite.setToolTip("replace existing files in the export folder")
        note = QLabel("Every input file, with the settings of the last separation.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555")
        self.form.addRow(note)
        self.form.addRow("Folder", self.folder)
        self.form.addRow("Format", self.format)
        self.form.addRow("Sources", self.sources_row)
        self.form.addRow("", self.overwrite)

    def values(self) -> dict:
        return {"folder": self.folder.text(), "format": self.format.currentText(),
                "sources": self.sources()}

    def set_values(self, **values: Any) -> None:
        sources = values.pop("sources", None)
        super().set_values(**values)
        if sources is not None:
            for name, box in self.source_boxes.items():
                box.setChecked(name in sources)

    def sources(self) -> list[str]:
        return [name for name, box in self.source_boxes.items() if box.isChecked()]

    def refresh(self) -> None:
        results = getattr(self.window, "results", None)
        if results is None:
            return
        self.folder.set_default(results.default_path("export"))
        names = ["background"] + (list(results.separated.result.removed) if results.separated else [])
        if list(self.source_boxes) != names:
            checked = {n for n, b in self.source_boxes.items() if b.isChecked()}
            for box in self.source_boxes.values():
                self.sources_layout.removeWidget(box)
                box.deleteLater()
            self.source_boxes = {}
            while self.sources_layout.count():
                self.sources_layout.takeAt(0)
            for name in names:
                box = QCheckBox(name)
                box.setChecked(name in checked or not checked)
                self.sources_layout.addWidget(box)
                self.source_boxes[name] = box
            self.sources_layout.addStretch(1)

    def request(self) -> JobRequest:
        from unmix.gui.tasks import export_separated

        results = _results(self.window)
        self.refresh()
        if results.separated is None:
            raise ConfigError("nothing to export yet: run Separate first")
        sources = self.sources()
        if not sources:
            raise ConfigError("choose at least one source to export")
        return JobRequest("Export", export_separated,
                          {"separated": results.separated, "out_dir": self.folder.value(),
                           "fmt": self.format.currentText(), "sources": sources,
                           "overwrite": self.overwrite.isChecked(), "inputs": results.input_files()},
                          lambda window, written: window.results.export_done(written))


def _pair(a: QWidget, b: QWidget) -> QWidget:
    w = QWidget()
    row = QHBoxLayout(w)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(a)
    row.addWidget(b)
    return w


def _stream(records: list) -> Any:
    from obspy import Stream

    stream = Stream()
    for rec in records:
        stream += rec.stream.copy()
    return stream


FORMS = (FeaturesForm, TrainForm, ClusterForm, SeparateForm, ExportForm)
TITLES = {"features": "Features", "train": "Train", "cluster": "Cluster", "separate": "Separate", "export": "Export"}
JOBS = tuple(JobSpec(form.key, TITLES[form.key], form, order=30 + 10 * i) for i, form in enumerate(FORMS))
