"""Pipeline panel: choose a registered job, run it in a worker, follow progress (with ETA), cancel, read the log."""

from __future__ import annotations

import re
import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import UnmixError
from unmix.gui.panels import pipeline
from unmix.gui.registry import JobRequest, JobSpec, jobs
from unmix.gui.views import forms
from unmix.gui.views.loss_curve import LossCurve, epoch_line
from unmix.gui.workers import Worker

_EPOCH_MESSAGE = re.compile(r"^epoch \d+")
"""Progress messages inside a training epoch (``epoch k/N step i/M``) and its summary: a job that reports its epochs
gets one log line per epoch from the report instead."""


def format_eta(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class JobPanel(QWidget):
    """Runs one job at a time; the owner receives results through ``apply`` or the ``job_failed`` signal."""

    job_started = Signal(str)
    job_finished = Signal(str, object)
    job_failed = Signal(str, str, str)
    job_cancelled = Signal(str)

    def __init__(self, window: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.worker: Worker | None = None
        self.request_: JobRequest | None = None
        self._started = 0.0
        self._last_message = ""
        self.queue: list[JobRequest] = []

        self.specs: list[JobSpec] = jobs((*forms.JOBS, *pipeline.JOBS))
        self.job_combo = QComboBox()
        self.forms = QStackedWidget()
        for spec in self.specs:
            self.job_combo.addItem(spec.title, spec.key)
            self.forms.addWidget(spec.make_form(window))
        self.job_combo.currentIndexChanged.connect(self.forms.setCurrentIndex)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run_selected)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.current = QLabel("Idle")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("%p%")
        self.eta = QLabel("")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)  # a narrow dock shows whole lines
        self.log.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # long paths break too
        self.log.setPlaceholderText("Job log")
        self.loss_curve = LossCurve()
        self.loss_curve.hide()  # shown by the first epoch a job reports

        top = QHBoxLayout()
        top.addWidget(self.job_combo, 1)
        top.addWidget(self.run_button)
        bar = QHBoxLayout()
        bar.addWidget(self.progress_bar, 1)
        bar.addWidget(self.eta)
        bar.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.forms)
        layout.addWidget(self.current)
        layout.addLayout(bar)
        layout.addWidget(self.loss_curve, 1)
        layout.addWidget(self.log, 1)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def form(self, key: str) -> QWidget:
        index = next(i for i, s in enumerate(self.specs) if s.key == key)
        return self.forms.widget(index)

    def select(self, key: str) -> None:
        self.job_combo.setCurrentIndex(next(i for i, s in enumerate(self.specs) if s.key == key))

    def run_selected(self) -> None:
        try:
            request = self.forms.currentWidget().request()
        except UnmixError as exc:
            self.job_failed.emit(self.job_combo.currentText(), exc.message, "")
            return
        self.start(request)

    def start(self, request: JobRequest) -> Worker | None:
        """Start ``request`` now, or queue it behind the running job (then None is returned)."""
        if self.worker is not None:
            self.queue.append(request)
            self.append_log(f"{request.title}: queued")
            return None
        self.request_ = request
        self.worker = worker = Worker(request.fn, title=request.title, **request.kwargs)
        worker.signals.progress.connect(self._on_progress)
        worker.signals.report.connect(self._on_report)
        worker.signals.finished.connect(self._on_finished)
        worker.signals.failed.connect(self._on_failed)
        worker.signals.cancelled.connect(self._on_cancelled)
        worker.signals.done.connect(self._on_done)
        self._started = time.monotonic()
        self._last_message = ""
        self.current.setText(f"<b>{request.title}</b>: starting")
        self.progress_bar.setValue(0)
        self.eta.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.append_log(f"{request.title}: started")
        self.job_started.emit(request.title)
        return worker.start()

    def clear_queue(self) -> None:
        for request in self.queue:
            self.append_log(f"{request.title}: removed from the queue")
        self.queue.clear()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.current.setText(f"<b>{self.request_.title}</b>: cancelling…")

    def append_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        elapsed = time.monotonic() - self._started
        if 0.02 < fraction < 1.0 and elapsed > 0.5:
            self.eta.setText(f"ETA {format_eta(elapsed * (1.0 - fraction) / fraction)}")
        title = self.request_.title if self.request_ else ""
        self.current.setText(f"<b>{title}</b>: {message}" if message else f"<b>{title}</b>")
        quiet = self.worker is not None and self.worker.reports and _EPOCH_MESSAGE.match(message)
        if message and message != self._last_message and not quiet:
            self.append_log(f"  {message}")
            self._last_message = message

    def _on_report(self, point: object) -> None:
        """Structured progress: a training epoch goes to the loss curve and is the epoch's one log line."""
        if isinstance(point, dict) and point.get("kind") == "epoch":
            self.loss_curve.add(point)
            self.loss_curve.show()
            self.append_log(f"  {epoch_line(point)}")

    def _on_finished(self, result: object) -> None:
        request = self.request_
        self.append_log(f"{request.title}: finished in {time.monotonic() - self._started:.1f} s")
        self.progress_bar.setValue(1000)
        if request.apply is not None:
            request.apply(self.window, result)
        self.job_finished.emit(request.title, result)

    def _on_failed(self, message: str, details: str) -> None:
        title = self.request_.title if self.request_ else "job"
        self.append_log(f"{title}: failed: {message}")
        self.job_failed.emit(title, message, details)

    def _on_cancelled(self) -> None:
        title = self.request_.title if self.request_ else "job"
        self.append_log(f"{title}: cancelled")
        self.progress_bar.setValue(0)
        self.job_cancelled.emit(title)

    def _on_done(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.eta.setText("")
        title = self.request_.title if self.request_ else ""
        self.current.setText(f"Idle (last: {title})")
        if self.queue:
            self.start(self.queue.pop(0))
