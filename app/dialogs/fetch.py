"""The "Fetch data" dialog: an FDSN download (``unmix.fetch.fetch``) run as a job, with progress and cancel.

The job goes through the main window's pipeline panel (so it queues behind other jobs and shows in its log); the
dialog follows it, shows what was written or failed, and opens the fetched SDS day files in the browser when done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from unmix.errors import ConfigError, UnmixError
from unmix.fetch import FetchReport, fetch, resolve_provider
from unmix.gui.registry import JobRequest

PROVIDERS = ("IRIS", "IPGP", "URL")
_FORMAT = "yyyy-MM-dd HH:mm:ss"


def _utc(text: str) -> QDateTime:
    value = QDateTime.fromString(text, _FORMAT)
    value.setTimeZone(QTimeZone.utc())
    return value


def _open_fetched(window: Any, report: FetchReport) -> None:
    files = [str(p) for p in report.waveform_files()]
    if files and window is not None:
        window.open_paths(files)


class FetchDialog(QDialog):
    """Request fields (provider, codes, UTC span, output folder), Fetch / Cancel, progress and the outcome."""

    fetch_done = Signal(object)  # the FetchReport
    fetch_ended = Signal(str)  # "finished", "failed" or "cancelled"

    def __init__(self, window: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.window = window
        self.setWindowTitle("Fetch data (FDSN)")
        self._request: JobRequest | None = None
        self._worker = None

        self.provider = QComboBox()
        for name, text in zip(PROVIDERS, ("IRIS / EarthScope", "IPGP", "Other FDSN web service (URL)"), strict=True):
            self.provider.addItem(text, name)
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://host:port (base URL of an FDSN web service)")
        self.provider.currentIndexChanged.connect(lambda _i: self.url.setEnabled(self.provider.currentData() == "URL"))
        self.url.setEnabled(False)
        self.network, self.station = QLineEdit("XB"), QLineEdit("ELYSE")
        self.location, self.channel = QLineEdit("02"), QLineEdit("BH?")
        self.start, self.end = QDateTimeEdit(), QDateTimeEdit()
        for edit, text in ((self.start, "2019-07-26 11:00:00"), (self.end, "2019-07-26 14:00:00")):
            edit.setDisplayFormat(_FORMAT)
            edit.setTimeZone(QTimeZone.utc())
            edit.setCalendarPopup(True)
            edit.setDateTime(_utc(text))
        self.out_dir = QLineEdit()
        self.out_dir.setPlaceholderText("folder of the local cache (SDS archive of day files, StationXML, manifest)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.response = QCheckBox("StationXML (instrument response)")
        self.response.setChecked(True)
        self.open_after = QCheckBox("Open the fetched files in the browser")
        self.open_after.setChecked(True)

        codes = QHBoxLayout()
        for label, edit in (("Net", self.network), ("Sta", self.station), ("Loc", self.location),
                            ("Cha", self.channel)):
            codes.addWidget(QLabel(label))
            codes.addWidget(edit)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_dir, 1)
        out_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Data centre", self.provider)
        form.addRow("URL", self.url)
        form.addRow("Stream", codes)
        form.addRow("Start (UTC)", self.start)
        form.addRow("End (UTC)", self.end)
        form.addRow("Save to", out_row)
        form.addRow("", self.response)
        form.addRow("", self.open_after)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Files already in the folder are not downloaded again.")
        self.status.setWordWrap(True)
        self.outcome = QPlainTextEdit()
        self.outcome.setReadOnly(True)
        self.outcome.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.outcome.setPlaceholderText("Files written and failures appear here")
        self.fetch_button = QPushButton("Fetch")
        self.fetch_button.setDefault(True)
        self.fetch_button.clicked.connect(self.start_fetch)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_fetch)
        buttons = QDialogButtonBox()
        buttons.addButton(self.fetch_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.outcome, 1)
        layout.addWidget(buttons)
        self.resize(620, 520)

        jobs = getattr(window, "jobs", None)
        if jobs is not None:
            jobs.job_started.connect(self._job_started)
            jobs.job_finished.connect(lambda _t, result: self._job_ended("finished", result))
            jobs.job_failed.connect(lambda _t, message, _d: self._job_ended("failed", message))
            jobs.job_cancelled.connect(lambda _t: self._job_ended("cancelled", None))

    @classmethod
    def open_for(cls, window: Any) -> FetchDialog:
        """Show the window's fetch dialog (one per window, kept between uses)."""
        dialog = getattr(window, "_fetch_dialog", None)
        if dialog is None:
            dialog = window._fetch_dialog = cls(window)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    # --- request --------------------------------------------------------------------------------------------------

    def set_request(self, provider: str, network: str = "XB", station: str = "ELYSE", location: str = "02",
                    channel: str = "BH?", start: str = "", end: str = "", out_dir: str | Path = "") -> None:
        """Fill the fields (``provider``: IRIS, IPGP or a URL; times as ``YYYY-MM-DD HH:MM:SS`` UTC)."""
        key = provider.upper() if provider.upper() in PROVIDERS[:2] else "URL"
        self.provider.setCurrentIndex(PROVIDERS.index(key))
        self.url.setText(provider if key == "URL" else "")
        for edit, value in ((self.network, network), (self.station, station), (self.location, location),
                            (self.channel, channel), (self.out_dir, str(out_dir))):
            edit.setText(value)
        if start:
            self.start.setDateTime(_utc(start))
        if end:
            self.end.setDateTime(_utc(end))

    def provider_value(self) -> str:
        key = self.provider.currentData()
        return self.url.text().strip() if key == "URL" else key

    def request(self) -> JobRequest:
        """The job of the current fields; bad fields raise :class:`ConfigError`."""
        provider = self.provider_value()
        if not provider:
            raise ConfigError("enter the URL of the FDSN web service")
        resolve_provider(provider)
        out = self.out_dir.text().strip()
        if not out:
            raise ConfigError("choose a folder to save the data to")
        kwargs = {"network": self.network.text(), "station": self.station.text(), "location": self.location.text(),
                  "channel": self.channel.text(), "start": self.start.dateTime().toString(Qt.DateFormat.ISODate),
                  "end": self.end.dateTime().toString(Qt.DateFormat.ISODate), "out_dir": str(Path(out).expanduser()),
                  "provider": provider, "response": self.response.isChecked()}
        return JobRequest("Fetch data", fetch, kwargs, _open_fetched if self.open_after.isChecked() else None)

    def _browse(self) -> None:
        start = self.out_dir.text() or getattr(getattr(self.window, "preferences", None), "last_dir", "")
        path = QFileDialog.getExistingDirectory(self, "Save fetched data to", start)
        if path:
            self.out_dir.setText(path)

    # --- running --------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._request is not None

    def start_fetch(self) -> None:
        """Start (or queue) the fetch in the main window's pipeline panel."""
        if self.running:
            return
        try:
            request = self.request()
        except UnmixError as exc:
            self.status.setText(f"<span style='color:#b00020'>{exc.message}</span>")
            return
        self._request = request
        self.outcome.clear()
        self.progress.setValue(0)
        self.fetch_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Waiting for the running job…" if self.window.jobs.busy else "Starting…")
        self.window.jobs.start(request)

    def cancel_fetch(self) -> None:
        if self._request is None:
            return
        jobs = self.window.jobs
        if jobs.request_ is self._request and jobs.worker is not None:
            jobs.cancel()
            self.status.setText("Cancelling after the current request…")
        elif self._request in jobs.queue:
            jobs.queue.remove(self._request)
            jobs.append_log(f"{self._request.title}: removed from the queue")
            self._job_ended("cancelled", None, force=True)
        self.cancel_button.setEnabled(False)

    def _mine(self) -> bool:
        return self._request is not None and self.window.jobs.request_ is self._request

    def _job_started(self, _title: str) -> None:
        if self._mine() and self.window.jobs.worker is not None:
            self._worker = self.window.jobs.worker
            self._worker.signals.progress.connect(self._on_progress)
            self.status.setText("Fetching…")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        if message:
            self.status.setText(message)

    def _job_ended(self, how: str, result: Any, force: bool = False) -> None:
        if not (force or self._mine()):
            return
        self._request = None
        self._worker = None
        self.fetch_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if how == "finished" and isinstance(result, FetchReport):
            self.progress.setValue(1000)
            self._show_report(result)
            self.fetch_done.emit(result)
        elif how == "failed":
            self.status.setText(f"<span style='color:#b00020'>{result}</span>")
        else:
            self.progress.setValue(0)
            self.status.setText("Cancelled; what was complete is kept and will not be downloaded again.")
        self.fetch_ended.emit(how)

    def _show_report(self, report: FetchReport) -> None:
        lines = [f"{p.name}  ({'downloaded' if p in report.downloaded else 'already present'})" for p in report.files]
        lines += [f"no data: {e}" for e in report.empty]
        if report.failures:
            lines += ["", f"{len(report.failures)} request(s) failed (fetch again to retry):"]
            lines += [f"  {f}" for f in report.failures]
        self.outcome.setPlainText("\n".join(lines))
        colour = "#b00020" if report.failures else "#1b5e20"
        self.status.setText(f"<span style='color:{colour}'>{report.summary()}</span>")
