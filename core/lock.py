"""One writer per output: a lock file beside (or inside) it, locked with ``flock`` and naming its holder.

A feature store is locked by ``STORE.lock`` beside it (:func:`store_lock`); a separation output folder by
``.unmix-separate.lock`` inside it (:func:`folder_lock`).

The kernel releases an ``flock`` when its holder dies, so the lock of a killed run is stale by construction and the
next run takes it over (its file is then rewritten). A run that finds the lock held gets one line naming the holder's
pid, host and start time. The lock file is removed when the holder finishes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from unmix.errors import UnmixError

log = logging.getLogger(__name__)


class BusyError(UnmixError):
    """Another run is writing the same output."""


class StoreBusyError(BusyError):
    """Another run is writing the same feature store."""


FOLDER_LOCK = ".unmix-separate.lock"


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def _holder_text(lock: Path) -> str:
    try:
        h = json.loads(lock.read_text())
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _try_lock(lock: Path) -> int | None:
    """An fd holding the flock on ``lock`` (the file at that path now), or None when another process holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the previous holder removed it between our open and our flock
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def _held(lock: Path, busy: Callable[[str], BusyError]) -> Iterator[Path]:
    """Hold ``lock`` for the duration of the block; ``busy(holder)`` is raised when another process holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _try_lock(lock)
    if fd is None:
        raise busy(_holder_text(lock))
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        log.debug("%s: lock taken (%s)", lock, info)
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # still ours: nobody else can hold it before we close
        os.close(fd)
        log.debug("%s: lock released", lock)


def store_lock(store: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Hold the store's lock for the duration of the block; :class:`StoreBusyError` when another run holds it."""
    store = Path(store)
    lock = lock_path(store)
    return _held(lock, lambda holder: StoreBusyError(
        f"in use by another 'unmix features' run ({holder}; lock {lock.name}); wait for it to finish", store))


def folder_lock(folder: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Hold a separation output folder for the duration of the block; :class:`BusyError` when another run writes
    into it (two runs into one folder would race on the same output names)."""
    folder = Path(folder)
    return _held(folder / FOLDER_LOCK, lambda holder: BusyError(
        f"another 'unmix separate' run is writing into this folder ({holder}); wait for it to finish or choose "
        "another --out", folder))
