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
    """Appends streams to an open binary file as miniSEED records (each trace's ``stats.mseed`` encoding)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
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
        self._fh.flush()
        os.fsync(self._fh.fileno())


@contextlib.contextmanager
def appended_mseed(target: str | Path, overwrite: bool = True) -> Iterator[MiniSeedAppender]:
    """A :class:`MiniSeedAppender` on a temporary file that replaces ``target`` when the block ends without error
    (and is removed otherwise)."""
    with atomic_path(target, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        appender = MiniSeedAppender(fh)
        yield appender
        appender.finish()


class AppendedFiles:
    """Several miniSEED outputs written piece by piece, each opened at its first piece (:func:`appended_mseed`);
    as a context manager, all of them appear at their targets when the block ends without error, none otherwise."""

    def __init__(self, overwrite: bool = True) -> None:
        self.overwrite = overwrite
        self.files: dict[Path, MiniSeedAppender] = {}
        self._stack = contextlib.ExitStack()

    def append(self, target: str | Path, stream: Stream) -> MiniSeedAppender:
        """Append ``stream`` to the output ``target`` (opened on first use); returns its appender."""
        target = Path(target)
        if target not in self.files:
            self.files[target] = self._stack.enter_context(appended_mseed(target, self.overwrite))
        appender = self.files[target]
        appender.append(stream)
        return appender

    def __enter__(self) -> AppendedFiles:
        self._stack.__enter__()
        return self

    def __exit__(self, *exc) -> bool | None:
        return self._stack.__exit__(*exc)


__all__ = ["AppendedFiles", "MiniSeedAppender", "appended_mseed"]
