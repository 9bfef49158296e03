"""Logging for Unmix: every module logs through ``logging.getLogger(__name__)`` (names under ``unmix``).

:func:`setup_logging` is called once by the CLI (and may be called by scripts): warnings and errors go to stderr as
plain lines (``warning: …``), progress lines (logger ``unmix.progress``) at INFO unless quiet, every INFO line with
``-v``, DEBUG with ``-vv`` (``-vvv`` also shows other libraries' debug output); ``log_file`` receives the full DEBUG
log with timestamps, written as it goes. Library users who never call it get Python's usual silence.

:class:`ProgressLog` turns the job protocol's ``progress(fraction, message)`` into periodic plain lines for batch
runs whose stderr is not a terminal (a log file, a pipe, a batch scheduler).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

ROOT = "unmix"
PROGRESS = "unmix.progress"
_OURS = "_unmix_handler"  # attribute that marks the handlers installed here (replaced on the next call)


class _ConsoleFormatter(logging.Formatter):
    """Plain one-line messages: INFO as is, others prefixed with their level (``warning: …``)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            return message
        if record.levelno == logging.DEBUG:
            return f"debug: {record.name}: {message}"
        return f"{record.levelname.lower()}: {message}"


class _ConsoleFilter(logging.Filter):
    """What stderr shows at a verbosity: progress lines at ``progress_level``, the rest at ``level``."""

    def __init__(self, level: int, progress_level: int) -> None:
        super().__init__()
        self.level, self.progress_level = level, progress_level

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "console", True):  # already printed by the CLI itself (its one error line)
            return False
        if record.name == PROGRESS:
            return record.levelno >= self.progress_level
        return record.levelno >= self.level


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (Click's test runner swaps it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def console_levels(verbosity: int, quiet: bool) -> tuple[int, int]:
    """(level of ordinary records, level of progress lines) shown on stderr."""
    if quiet:
        return logging.ERROR, logging.ERROR
    if verbosity <= 0:
        return logging.WARNING, logging.INFO
    return (logging.INFO if verbosity == 1 else logging.DEBUG), logging.INFO


def setup_logging(verbosity: int = 0, quiet: bool = False, log_file: str | Path | None = None) -> None:
    """Install the stderr handler (and the ``log_file`` handler); calling it again replaces both."""
    level, progress_level = console_levels(verbosity, quiet)
    teardown_logging()
    console = _StderrHandler()
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(_ConsoleFilter(level, progress_level))
    handlers = [console]
    if log_file is not None:
        to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8")  # flushed after every record
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(to_file)
    # -vvv: other libraries' records too (through the root logger); otherwise only Unmix's.
    target = logging.getLogger() if verbosity >= 3 else logging.getLogger(ROOT)
    for h in handlers:
        setattr(h, _OURS, True)
        target.addHandler(h)
    logging.getLogger(ROOT).setLevel(logging.DEBUG if (log_file is not None or verbosity >= 2) else
                                     min(level, progress_level))
    if verbosity >= 3:
        logging.getLogger().setLevel(logging.DEBUG)


def teardown_logging() -> None:
    """Remove (and close) the handlers :func:`setup_logging` installed."""
    for logger in (logging.getLogger(ROOT), logging.getLogger()):
        for h in [h for h in logger.handlers if getattr(h, _OURS, False)]:
            logger.removeHandler(h)
            h.close()
    logging.getLogger(ROOT).setLevel(logging.NOTSET)


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressLog:
    """``progress(fraction, message)`` sink that logs ``desc: 42% – message – elapsed 1m02s, ETA 1m20s`` at INFO
    on ``unmix.progress``, at most once every ``every`` seconds and every ``step`` of progress (whichever comes
    later), and once at the end of a run that printed anything. A job whose progress moves slowly (one case of a
    benchmark taking many minutes) still gets a line every ``heartbeat`` seconds (default: 6 × ``every``, at least a
    minute), with its latest message, so that a batch log shows it is alive and where it is."""

    def __init__(self, desc: str, every: float = 10.0, step: float = 0.10, clock=time.monotonic,
                 heartbeat: float | None = None) -> None:
        self.desc, self.every, self.step, self.clock = desc, every, step, clock
        self.heartbeat = max(6.0 * every, 60.0) if heartbeat is None else float(heartbeat)
        self.logger = logging.getLogger(PROGRESS)
        self.start = self._last_time = clock()
        self._last_fraction = 0.0
        self._fraction, self._message, self._lines = 0.0, "", 0

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._fraction = max(self._fraction, fraction)
        self._message = message or self._message
        now = self.clock()
        waited = now - self._last_time
        if (waited >= self.every and self._fraction - self._last_fraction >= self.step) or waited >= self.heartbeat:
            self._emit(now)

    def _emit(self, now: float) -> None:
        elapsed = now - self.start
        parts = [f"{self.desc}: {100 * self._fraction:.0f}%"]
        if self._message:
            parts.append(self._message)
        timing = f"elapsed {format_duration(elapsed)}"
        if 0 < self._fraction < 1:
            timing += f", ETA {format_duration(elapsed * (1 - self._fraction) / self._fraction)}"
        self.logger.info(" – ".join(parts + [timing]))
        self._last_time, self._last_fraction, self._lines = now, self._fraction, self._lines + 1

    def close(self) -> None:
        """A last line at 100 % when earlier lines were printed (so a log never ends at 90 %)."""
        if self._lines and self._fraction >= 1.0 and self._last_fraction < 1.0:
            self._emit(self.clock())
