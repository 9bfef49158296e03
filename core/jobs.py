"""The progress / cancel protocol shared by every long step (CLI and GUI).

A long step accepts ``progress`` (called as ``progress(fraction, message)``, fraction in [0, 1]) and ``token`` (a
:class:`CancelToken`); it calls :meth:`CancelToken.check` between units of work, which raises :class:`Cancelled`.
Nothing here knows about threads or Qt: the GUI sets the token from its Cancel button, the CLI from Ctrl-C.

A step nobody can cancel gets :data:`NO_CANCEL` (the default of every ``token`` parameter) and one nobody watches
:func:`no_progress`, so jobs call ``token.check()`` and ``progress(...)`` without testing for ``None``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job when its token was cancelled."""


class Progress(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def no_progress(fraction: float, message: str = "") -> None:
    """Progress sink that ignores everything."""


class CancelToken:
    """Thread-safe cancellation flag checked by jobs between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by user")


class _NeverCancelled(CancelToken):
    """The token of a job nobody can cancel: never cancelled, and cancelling it is a programming error."""

    def cancel(self) -> None:
        raise TypeError("NO_CANCEL cannot be cancelled: give the job a CancelToken() of its own")

    @property
    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        """Never raises."""


NO_CANCEL: CancelToken = _NeverCancelled()
"""The shared null token: the default ``token`` of every long step."""


def sub_progress(progress: Progress | None, start: float, stop: float) -> Progress:
    """Map a child's [0, 1] progress onto [start, stop] of the parent's."""
    if progress is None:
        return no_progress

    def child(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return child


def labelled(progress: Progress, label: str) -> Progress:
    """``progress`` whose messages start with ``label`` (e.g. which case and method a line is about);
    reports ``label`` at once, at the fraction 0."""
    progress(0.0, label)

    def child(fraction: float, message: str = "") -> None:
        progress(fraction, f"{label} – {message}" if message else label)

    return child


def iterate(
    items: Iterable[T],
    total: int,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    message: str = "",
) -> Iterator[T]:
    """Yield ``items``, reporting progress after each and checking the token before each."""
    for i, item in enumerate(items):
        token.check()
        yield item
        progress((i + 1) / max(total, 1), message)

