"""Output files written piece by piece, as the pieces of a long separation arrive (:mod:`unmix.separation.pieces`).

MiniSEED is a sequence of independent records, so the pieces of a channel are appended as records, one piece after
the other; readers join the records of a channel that follow on in time into one trace again. Each file is written
through a temporary name (:func:`unmix.atomic.atomic_path`): it appears at its target only when every piece went in,
and on an error nothing is left. Every piece is encoded in memory first and written with ordinary file writes (ObsPy's
miniSEED writer swallows write errors, see :func:`unmix.atomic.write_stream`); the byte count and SHA-256 of what
was written, the trace ids and the processing notes are kept for the provenance, so nothing is read back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from obspy import Stream

from unmix.atomic import atomic_path


class MiniSeedAppender:
    """Appends streams to an open binary file as miniSEED records (each trace's ``stats.mseed`` encoding); a
    failed write (e.g. a full disk) is an OSError naming ``name`` (the output it becomes; default the file's)."""

    def __init__(self, fh: BinaryIO, name: str | Path | None = None) -> None:
        self._fh = fh
        self.name = str(name if name is not None else getattr(fh, "name", "output"))
        self._sha = hashlib.sha256()
        self.bytes = 0
        self.ids: set[str] = set()
        self.processing: list[str] = []

    def append(self, stream: Stream) -> None:
        """Write the traces of ``stream`` after what is already in the file."""
        if len(stream) == 0:
            return
        buffer = io.BytesIO()
        stream.write(buffer, format="MSEED")
        data = buffer.getbuffer()
        with self._named_errors():
            self._fh.write(data)
        self._sha.update(data)
        self.bytes += len(data)
        self.ids.update(tr.id for tr in stream)
        for note in (p for tr in stream for p in tr.stats.get("processing", [])):
            if note not in self.processing:
                self.processing.append(note)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._sha.hexdigest()

    def finish(self) -> None:
        """Flush what was written to the disk."""
        with self._named_errors():
            self._fh.flush()
            os.fsync(self._fh.fileno())

    @contextlib.contextmanager
    def _named_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.name) from exc


@contextlib.contextmanager
def appended_mseed(target: str | Path, overwrite: bool = True) -> Iterator[MiniSeedAppender]:
    """A :class:`MiniSeedAppender` on a temporary file that replaces ``target`` when the block ends without error
    (and is removed otherwise)."""
    with atomic_path(target, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        appender = MiniSeedAppender(fh, target)
        yield appender
        appender.finish()


class AppendedFiles:
    """Several miniSEED outputs written piece by piece, each opened at its first piece (:func:`appended_mseed`);
    as a context manager, they appear at their targets in the order they were opened when the block ends without
    error (as outputs written one after the other would), none otherwise."""

    def __init__(self, overwrite: bool = True) -> None:
        self.overwrite = overwrite
        self.files: dict[Path, MiniSeedAppender] = {}
        self._open: list[contextlib.AbstractContextManager] = []

    def append(self, target: str | Path, stream: Stream) -> MiniSeedAppender:
        """Append ``stream`` to the output ``target`` (opened on first use); returns its appender."""
        target = Path(target)
        if target not in self.files:
            manager = appended_mseed(target, self.overwrite)
            self.files[target] = manager.__enter__()
            self._open.append(manager)
        appender = self.files[target]
        appender.append(stream)
        return appender

    def __enter__(self) -> AppendedFiles:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        managers, self._open = self._open, []
        failure: BaseException | None = None
        for manager in managers:  # in opening order; once one failed, the others are only cleaned up
            try:
                if failure is None:
                    manager.__exit__(kind, exc, tb)
                else:
                    manager.__exit__(type(failure), failure, failure.__traceback__)
            except BaseException as err:  # e.g. the rename failed: the later outputs must not appear
                if exc is None and failure is None:
                    failure = err
        if failure is not None:
            raise failure


__all__ = ["AppendedFiles", "MiniSeedAppender", "appended_mseed"]
