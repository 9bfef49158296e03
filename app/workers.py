"""One worker type that runs any core job (``fn(..., progress=, token=)``) on a thread pool and reports via signals."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from unmix.errors import UnmixError
from unmix.jobs import Cancelled, CancelToken

_POOL: QThreadPool | None = None
_ACTIVE: set[Worker] = set()


def pool() -> QThreadPool:
    """The application's worker pool (separate from Qt's global pool so shutdown can wait on it alone)."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(4)
    return _POOL


class WorkerSignals(QObject):
    """Signals of a :class:`Worker`; they live in the GUI thread, so slots run there."""

    progress = Signal(float, str)
    report = Signal(object)  # structured progress (a dict, e.g. one training epoch's losses), never throttled
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()


class Worker(QRunnable):
    """Runs ``fn(*args, progress=..., token=..., **kwargs)`` off the GUI thread; a function that takes ``report``
    also gets ``report=`` a callable whose dicts arrive as the ``report`` signal (structured progress).

    Progress is throttled to one signal per ``min_interval`` seconds (plus the final 1.0). An
    :class:`~unmix.errors.UnmixError` becomes ``failed(message, "")``; any other exception ``failed(message,
    traceback)``; :class:`~unmix.jobs.Cancelled` becomes ``cancelled``. ``done`` always follows.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, title: str = "", min_interval: float = 0.1,
                 **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.title = title or getattr(fn, "__name__", "job")
        self.token = CancelToken()
        self.signals = WorkerSignals()
        self.min_interval = min_interval
        self._last_emit = 0.0
        self.running = False
        self.reports = _accepts_report(fn)

    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last_emit >= self.min_interval:
            self._last_emit = now
            self.signals.progress.emit(float(fraction), str(message))

    def start(self) -> Worker:
        """Queue the job on the pool; the worker keeps itself alive until ``done``."""
        _ACTIVE.add(self)
        self.signals.done.connect(lambda: _ACTIVE.discard(self))
        self.running = True
        pool().start(self)
        return self

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        try:
            extra = {"report": self.signals.report.emit} if self.reports else {}
            result = self.fn(*self.args, progress=self._progress, token=self.token, **extra, **self.kwargs)
        except Cancelled:
            self.signals.cancelled.emit()
        except UnmixError as exc:
            self.signals.failed.emit(exc.message, "")
        except Exception as exc:  # programming errors reach the user as a dialog, never as a crash
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.signals.finished.emit(result)
        finally:
            self.running = False
            self.signals.done.emit()


def _accepts_report(fn: Callable[..., Any]) -> bool:
    """Whether a job function takes ``report=`` (a callable receiving structured progress, e.g. epoch losses)."""
    import inspect

    try:
        return "report" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def cancel_all(wait_ms: int = 5000) -> bool:
    """Cancel every active worker and wait for the pool; True when all stopped in time."""
    for worker in list(_ACTIVE):
        worker.cancel()
    return pool().waitForDone(wait_ms)
