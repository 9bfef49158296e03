"""The "Generate from a cluster" dialog: synthesise waveforms whose scattering-covariance statistics match a
cluster of the current table (``unmix.generate.synthesize``), show them beside real members of the cluster with the
quality figures of ``generation_quality``, and save them as miniSEED with their provenance (as ``unmix generate``).

The data steps (the job, the quality rows, the cluster choices, saving) are plain functions; the Qt classes only
show them. The synthesis runs as a job: through the main window's job panel when there is one (the dialog follows
its progress and can cancel it), else on a worker of its own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, UnmixError
from unmix.generate import DEFAULT_MAX_ITER, MAX_COUNT, Synthesis, synthesis_quality, synthesize, write_generation
from unmix.gui.dialogs.table_dialog import TableDialog
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress

QUALITY_COLUMNS = ("Statistics", "Generated inside", "Median distance", "Members median / p90",
                   "White noise inside", "Coloured noise inside")
FAMILY_TEXT = {"cov": "cov (optimised)", "scat": "scat (held out)"}
SHOWN = 3  # waveforms and members drawn side by side
MSEED_FILTER = "miniSEED (*.mseed *.miniseed)"


# --- data steps (no Qt) ------------------------------------------------------------------------------------------


@dataclass
class Generated:
    """What a generation job returns: the waveforms and their quality (None: fewer than 3 members)."""

    synthesis: Synthesis
    quality: dict | None


def generate_waveforms(table: ClusterTable, cluster: int, scale: int, count: int = 4, length: int | None = None,
                       seed: int = 0, max_iter: int = DEFAULT_MAX_ITER, device: str = "auto",
                       progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> Generated:
    """:func:`~unmix.generate.synthesize` then :func:`~unmix.generate.synthesis_quality` (job)."""
    synthesis = synthesize(table, cluster, scale, n=count, length=length, seed=seed, max_iter=max_iter,
                           device=device, progress=sub_progress(progress, 0.0, 0.85), token=token)
    token.check()
    progress(0.85, "scoring against the cluster's members")
    quality = synthesis_quality(synthesis, table, seed)
    progress(1.0, f"{count} waveform(s) of cluster {synthesis.info['cluster_label']}")
    return Generated(synthesis, quality)


def cluster_choices(table: ClusterTable, scale: int) -> list[tuple[str, int]]:
    """(label, cluster) of the occupied clusters of ``scale``, with their number of windows."""
    occupancy = table.occupancy(scale)
    return [(f"{table.label(scale, k)} — {int(occupancy[k])} windows", int(k)) for k in occupancy.nonzero()[0]]


def resolve_cluster(table: ClusterTable, text: str, scale: int) -> int:
    """The one cluster ``text`` (a number or a name) means at ``scale`` (ConfigError otherwise)."""
    found = table.resolve(text.strip(), scale)
    if len(found) != 1:
        raise ConfigError(f"{text.strip()!r} names {len(found)} clusters at scale {scale} "
                          f"({', '.join(map(str, found))}); choose one")
    return int(found[0])


def quality_rows(quality: dict | None) -> list[tuple[str, ...]]:
    """The quality figures as the dialog's table shows them, one row per statistics family."""
    rows = []
    for fam, e in (quality or {}).get("families", {}).items():
        rows.append((FAMILY_TEXT.get(fam, fam), f"{e['generated']['inside_fraction']:.0%}",
                     f"{e['generated']['median']:.3g}", f"{e['real']['median']:.3g} / {e['limit']:.3g}",
                     f"{e['white']['inside_fraction']:.0%}", f"{e['coloured']['inside_fraction']:.0%}"))
    return rows


def save_generated(generated: Generated, path: str | Path, table_path: str | Path | None) -> tuple[Path, Path]:
    """Write the waveforms to ``path`` (``.mseed`` added when it has no miniSEED suffix) and the provenance beside
    it, replacing both (the file dialog asked)."""
    path = Path(path)
    if path.suffix.lower() not in (".mseed", ".miniseed"):
        path = path.with_name(path.name + ".mseed")
    return write_generation(generated.synthesis, path, table_path, generated.quality, overwrite=True)


# --- Qt ----------------------------------------------------------------------------------------------------------


class WaveformsView(QWidget):
    """Generated waveforms (left) beside the cluster's most confident real members (right), one component."""

    def __init__(self, parent: QWidget | None = None) -> None:
        import pyqtgraph as pg

        super().__init__(parent)
        self.component = QComboBox()
        self.component.setToolTip("component shown")
        self.component.currentIndexChanged.connect(self._redraw)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(300)
        self.generated: Synthesis | None = None
        self.curves: list[Any] = []
        top = QHBoxLayout()
        top.addWidget(QLabel("Component"))
        top.addWidget(self.component)
        top.addStretch(1)
        top.addWidget(QLabel("generated (blue) beside the cluster's most confident members; time in s"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plots, 1)

    def set_synthesis(self, synthesis: Synthesis) -> None:
        self.generated = synthesis
        self.component.blockSignals(True)
        self.component.clear()
        self.component.addItems(list(synthesis.components))
        self.component.blockSignals(False)
        self._redraw()

    def _redraw(self, *_args) -> None:
        s = self.generated
        self.plots.clear()
        self.curves = []
        if s is None:
            return
        c = max(self.component.currentIndex(), 0)
        rate = float(s.snippets.sampling_rate)
        real = s.snippets.data
        rows = max(min(len(s.data), SHOWN), min(len(real), SHOWN))
        first = None
        for i in range(rows):
            for j, (data, title) in enumerate(((s.data, f"generated {i}"),
                                              (real, f"member {s.snippets.indices[i]}" if i < len(real) else ""))):
                if i >= len(data):  # an empty cell of the same size keeps the rows of both columns alike
                    blank = self.plots.addPlot(row=i, col=j)
                    blank.setTitle(" ", size="9pt")
                    for axis in ("left", "bottom"):
                        blank.getAxis(axis).setStyle(showValues=False)
                        blank.getAxis(axis).setPen(None)
                    blank.getAxis("left").setWidth(48)
                    blank.hideButtons()
                    blank.setMouseEnabled(False, False)
                    continue
                plot = self.plots.addPlot(row=i, col=j)
                plot.setTitle(title, size="9pt")
                y = np.asarray(data[i, c], dtype=np.float64)
                self.curves.append(plot.plot(np.arange(len(y)) / rate, y, pen=("#1f77b4" if j == 0 else "#555555")))
                plot.showGrid(x=True, y=True, alpha=0.2)
                plot.getAxis("left").setWidth(48)  # every plot alike, so the rows of both columns line up
                if first is None:
                    first = plot
                else:
                    plot.setXLink(first)
        for i in range(rows):
            self.plots.ci.layout.setRowStretchFactor(i, 1)


class GenerateClusterDialog(TableDialog):
    """Choose a cluster and scale of ``table`` (file ``path``), count, length, seed and iterations; Generate (a job
    with progress and Cancel); the waveforms beside real members, the quality figures, "Save as miniSEED…".

    ``window`` (optional) is the main window: its job panel runs the synthesis and its preferences give the device.
    ``generated(Generated)`` is emitted when a result is shown.
    """

    generated = Signal(object)

    def __init__(self, table: ClusterTable, path: str | Path | None = None, window: Any = None,
                 scale: int | None = None, cluster: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.setWindowTitle("Generate from a cluster")
        self.table, self.path, self.window_ = table, (Path(path) if path else None), window
        self.result: Generated | None = None
        self.worker: Any = None  # the running job's worker, once started
        self._request: Any = None
        rate = table.meta.get("sampling_rate")
        self._rate = float(rate) if rate else None

        self.scale_combo = QComboBox()
        for s in table.scales:
            self.scale_combo.addItem(f"{s}" + (f" ({s / self._rate:.0f} s)" if self._rate else ""), int(s))
        self.cluster_combo = QComboBox()
        self.cluster_combo.setEditable(True)
        self.cluster_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.cluster_combo.setToolTip("the cluster to draw from: choose one, or type its number or name")
        self.count = QSpinBox()
        self.count.setRange(1, MAX_COUNT)
        self.count.setValue(4)
        self.count.setToolTip("waveforms to generate")
        self.length = QSpinBox()
        self.length.setRange(0, 1 << 22)
        self.length.setSingleStep(256)
        self.length.setSpecialValueText("the scale")
        self.length.setSuffix(" samples")
        self.length.setToolTip("samples per waveform; longer than the scale matches the same time-averaged "
                               "statistics")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("seed of the starting noise: the same seed gives the same waveforms")
        self.iterations = QSpinBox()
        self.iterations.setRange(0, 100000)
        self.iterations.setValue(DEFAULT_MAX_ITER)
        self.iterations.setToolTip("L-BFGS iterations at most (a waveform stops earlier when it matches)")
        form = QGridLayout()
        form.addWidget(QLabel("Scale"), 0, 0)
        form.addWidget(self.scale_combo, 0, 1)
        form.addWidget(QLabel("Cluster"), 0, 2)
        form.addWidget(self.cluster_combo, 0, 3, 1, 3)
        form.addWidget(QLabel("Count"), 1, 0)
        form.addWidget(self.count, 1, 1)
        form.addWidget(QLabel("Length"), 1, 2)
        form.addWidget(self.length, 1, 3)
        form.addWidget(QLabel("Seed"), 1, 4)
        form.addWidget(self.seed, 1, 5)
        form.addWidget(QLabel("Iterations"), 2, 0)
        form.addWidget(self.iterations, 2, 1)
        form.setColumnStretch(3, 1)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel generation")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Choose a cluster, then Generate (the cluster's members are read from the table's "
                             "input files)")
        self.status.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(self.generate_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)

        self.waveforms = WaveformsView()
        self.quality = QTableWidget(0, len(QUALITY_COLUMNS))
        self.quality.setHorizontalHeaderLabels(QUALITY_COLUMNS)
        self.quality.verticalHeader().setVisible(False)
        self.quality.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.quality.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.quality.setToolTip("distance of each waveform's statistics to the members' mean (normalised by their "
                                "spread); inside = below the members' 90th percentile (leave-one-out). White noise "
                                "of the members' power must fall outside")
        self.quality.setFixedHeight(3 * self.quality.verticalHeader().defaultSectionSize() + 6)

        self.save_button = QPushButton("Save as miniSEED…")
        self.save_button.setToolTip("write the waveforms (network SY, location = realisation number) and their "
                                    "provenance beside them, as unmix generate does")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_dialog)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(self.waveforms, 1)
        layout.addWidget(self.quality)
        layout.addWidget(buttons)

        self.scale_combo.currentIndexChanged.connect(self._fill_clusters)
        if scale is not None:
            self.scale_combo.setCurrentIndex(max(self.scale_combo.findData(int(scale)), 0))
        self._fill_clusters()
        if cluster is not None:
            self.set_cluster(cluster)
        self.resize(900, 640)

    def scale(self) -> int:
        return int(self.scale_combo.currentData())

    def _fill_clusters(self, *_args) -> None:
        text = self.cluster_combo.currentText()
        self.cluster_combo.clear()
        for label, k in cluster_choices(self.table, self.scale()):
            self.cluster_combo.addItem(label, k)
        with contextlib.suppress(UnmixError):
            if text:
                self.set_cluster(resolve_cluster(self.table, text.split(" — ")[0].split(" (")[0], self.scale()))

    def set_cluster(self, cluster: int | str) -> None:
        """Choose ``cluster`` (its number; a name or other text is typed in as the user would)."""
        index = self.cluster_combo.findData(int(cluster)) if isinstance(cluster, int) else -1
        if index >= 0:
            self.cluster_combo.setCurrentIndex(index)
        else:
            self.cluster_combo.setEditText(str(cluster))

    def cluster(self) -> int:
        """The chosen cluster: the item picked, else the number or name typed (ConfigError when unclear)."""
        index = self.cluster_combo.currentIndex()
        text = self.cluster_combo.currentText()
        if index >= 0 and text == self.cluster_combo.itemText(index):
            return int(self.cluster_combo.itemData(index))
        if not text.strip():
            raise ConfigError("choose the cluster to generate from")
        return resolve_cluster(self.table, text, self.scale())

    def request(self) -> Any:
        """The job the form describes (ConfigError for a bad choice)."""
        from unmix.gui.registry import JobRequest

        cluster, scale = self.cluster(), self.scale()
        kwargs = {"table": self.table, "cluster": cluster, "scale": scale, "count": self.count.value(),
                  "length": self.length.value() or None, "seed": self.seed.value(),
                  "max_iter": self.iterations.value(),
                  "device": getattr(getattr(self.window_, "preferences", None), "device", "auto") or "auto"}
        return JobRequest(f"Generate from cluster {self.table.label(scale, cluster)} (scale {scale})",
                          generate_waveforms, kwargs, self._apply)

    # --- the job --------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Start the generation job (one at a time per dialog)."""
        from unmix.gui.views.dialogs import show_error
        from unmix.gui.workers import Worker

        if self._request is not None:
            return
        try:
            request = self.request()
        except UnmixError as exc:
            show_error(self, "Cannot generate", exc.message)
            return
        self._request = request
        self.generate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        jobs = getattr(self.window_, "jobs", None)
        if jobs is not None:
            jobs.job_started.connect(self._job_started)
            self.status.setText("queued behind the running job (see the Jobs panel)…")
            jobs.start(request)  # job_started follows at once when nothing else runs
            return
        worker = Worker(request.fn, title=request.title, **request.kwargs)
        worker.signals.finished.connect(lambda result: request.apply(None, result))
        worker.signals.failed.connect(lambda message, details: show_error(self, "Generation failed", message,
                                                                          details))
        self._attach(worker)
        worker.start()

    def _job_started(self, _title: str) -> None:
        jobs = self.window_.jobs
        if jobs.request_ is self._request and jobs.worker is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                jobs.job_started.disconnect(self._job_started)
            self._attach(jobs.worker)

    def _attach(self, worker: Any) -> None:
        self.worker = worker
        self.status.setText("reading the cluster's members…")
        worker.signals.progress.connect(self._progress)
        worker.signals.failed.connect(lambda message, _d: self.status.setText(f"failed: {message}"))
        worker.signals.cancelled.connect(lambda: self.status.setText("cancelled"))
        worker.signals.done.connect(self._done)

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        if message:
            self.status.setText(message)

    def _done(self) -> None:
        self.worker, self._request = None, None
        self.generate_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        """Cancel the generation (running: its token is checked every iteration; queued: removed)."""
        if self.worker is not None:
            self.worker.cancel()
            self.status.setText("cancelling…")
            self.cancel_button.setEnabled(False)
            return
        jobs = getattr(self.window_, "jobs", None)
        if self._request is not None and jobs is not None and self._request in jobs.queue:
            jobs.queue.remove(self._request)
            jobs.append_log(f"{self._request.title}: removed from the queue")
            with contextlib.suppress(RuntimeError, TypeError):
                jobs.job_started.disconnect(self._job_started)
            self.status.setText("cancelled")
            self._done()

    def _apply(self, _window: Any, result: Generated) -> None:
        if self.isVisible():
            self.show_result(result)

    def done(self, code: int) -> None:
        """Closing the dialog cancels its generation: nobody would see the result."""
        self.cancel()
        super().done(code)

    # --- the result -----------------------------------------------------------------------------------------------

    def show_result(self, result: Generated) -> None:
        s = result.synthesis
        self.result = result
        self.waveforms.set_synthesis(s)
        rows = quality_rows(result.quality)
        self.quality.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.quality.setItem(i, j, item)
        info = s.info
        measured = "" if result.quality is not None else "; quality not measured: fewer than 3 real members"
        self.status.setText(f"{info['count']} waveform(s) of cluster {info['cluster_label']} at scale {s.scale}, "
                            f"{info['length']} samples, from {info['n_prior']} members: {info['iterations']} "
                            f"iterations, {info['seconds_per_waveform']} s per waveform{measured}")
        self.save_button.setEnabled(True)
        self.generated.emit(result)

    def quality_cell(self, row: int, column: int) -> str:
        item = self.quality.item(row, column)
        return item.text() if item is not None else ""

    def save(self, path: str | Path) -> tuple[Path, Path] | None:
        """Write the shown waveforms and their provenance (a failure is one message)."""
        from unmix.gui.views.dialogs import show_error

        if self.result is None:
            return None
        try:
            written = save_generated(self.result, path, self.path)
        except UnmixError as exc:
            show_error(self, "Cannot save the waveforms", exc.message)
            return None
        self.status.setText(f"saved {written[0]} and its provenance {written[1].name}")
        jobs = getattr(self.window_, "jobs", None)
        if jobs is not None:
            jobs.append_log(f"Generated waveforms saved in {written[0]}")
        return written

    def save_dialog(self) -> None:
        if self.result is None:
            return
        s = self.result.synthesis
        folder = self.path.parent if self.path else Path.home()
        name = f"generated_scale{s.scale}_cluster{s.cluster}_seed{s.info['seed']}.mseed"
        path, _ = QFileDialog.getSaveFileName(self, "Save the generated waveforms", str(folder / name), MSEED_FILTER)
        if path:
            self.save(path)


__all__ = ["Generated", "GenerateClusterDialog", "cluster_choices", "generate_waveforms", "quality_rows",
           "resolve_cluster", "save_generated"]
