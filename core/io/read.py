"""Read waveform files (every format ObsPy reads) from files, directories and globs, with clear errors."""

from __future__ import annotations

import glob
import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read
from obspy.core.util.base import ENTRY_POINTS, buffered_load_entry_point
from obspy.io.mseed import InternalMSEEDWarning

from unmix.errors import DataError, InputFileError
from unmix.io.integrity import mseed_damage
from unmix.jobs import NO_CANCEL, CancelToken, Progress, iterate, no_progress

_NOT_WAVEFORMS = {".xml", ".txt", ".json", ".png", ".md", ".h5", ".hdf5", ".csv", ".zarr", ".pt", ".log", ".pdf"}
_GLOB_CHARS = set("*?[")

#: The waveform formats Unmix reads, in the order they are recognised. ObsPy's PICKLE (and its detector, which
#: unpickles the file) is never used: a data file must not be able to run code. Formats that reference other files
#: (CSS) or whose detectors are known to be loose are left out too.
WAVEFORM_FORMATS = ("MSEED", "SAC", "GSE2", "SEISAN", "Q", "SH_ASC", "SACXY", "SLIST", "TSPAIR", "AH", "GCF",
                    "SEGY", "SU")
_REFUSED = {"PICKLE": "ObsPy's PICKLE format can run code when read; Unmix never reads it"}


@dataclass(frozen=True)
class TimeWindow:
    """A span of a file to read: samples from ``start`` to ``end``; for miniSEED, ``ranges`` (byte ranges that hold
    the span's records, :meth:`unmix.io.integrity.Layout.ranges`) lets only those bytes be read."""

    start: UTCDateTime
    end: UTCDateTime
    ranges: tuple[tuple[int, int], ...] | None = None


def expand_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Resolve files, directories (recursively, hidden entries skipped) and glob patterns to a sorted file list.

    A name that matches nothing raises :class:`InputFileError`; files are deduplicated and kept in input order.
    """
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    out: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(c in text for c in _GLOB_CHARS) and not Path(text).exists():
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise InputFileError("no file matches this pattern", text)
            out.extend(Path(m) for m in matches if Path(m).is_file())
            continue
        path = Path(os.path.expanduser(text))
        if not path.exists():
            raise InputFileError("no such file or directory", text)
        if path.is_dir():
            found = [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.suffix.lower() not in _NOT_WAVEFORMS
            ]
            if not found:
                raise InputFileError("directory contains no waveform files", text)
            out.extend(found)
        else:
            out.append(path)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _what_it_is(path: Path) -> str:
    """A hint for files users commonly pass by mistake: Unmix's own HDF5 stores and model checkpoints."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return "; it is an HDF5 file, e.g. an Unmix feature store or cluster table, not a waveform file"
    if head[:4] == b"PK\x03\x04" and path.suffix in (".pt", ".pth"):
        return "; it looks like a PyTorch checkpoint (an Unmix model), not a waveform file"
    return ""


def _detector(fmt: str):
    ep = ENTRY_POINTS["waveform"][fmt]
    return buffered_load_entry_point(ep.dist.name, f"obspy.plugin.waveform.{fmt}", "isFormat")


def detect_format(path: str | Path) -> str | None:
    """The first of :data:`WAVEFORM_FORMATS` whose ObsPy detector accepts ``path``; ``None`` when none does.

    Only the detectors of these formats run, never ObsPy's full autodetection (which would unpickle the file).
    """
    for fmt in WAVEFORM_FORMATS:
        if fmt not in ENTRY_POINTS["waveform"]:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if _detector(fmt)(str(path)):
                    return fmt
        except Exception:  # a detector that chokes on foreign bytes means "not this format"
            continue
    return None


def _choose_format(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.upper()
        if fmt in _REFUSED:
            raise InputFileError(f"format {fmt} refused: {_REFUSED[fmt]}", path)
        if fmt not in WAVEFORM_FORMATS or fmt not in ENTRY_POINTS["waveform"]:
            raise InputFileError(f"unknown waveform format {format!r} (Unmix reads {', '.join(WAVEFORM_FORMATS)})",
                                 path)
        return fmt
    fmt = detect_format(path)
    if fmt is None:
        raise InputFileError("unknown or unsupported waveform format (Unmix reads "
                             + ", ".join(WAVEFORM_FORMATS) + ")" + _what_it_is(path), path)
    return fmt


def read_file(path: str | Path, format: str | None = None, allow_damaged: bool = False,
              window: TimeWindow | None = None) -> Stream:
    """Read one waveform file with ObsPy, turning every failure into an :class:`InputFileError` naming the file.

    The format is recognised among :data:`WAVEFORM_FORMATS` only (never PICKLE), then read with that format named,
    so no other ObsPy reader or detector ever sees the file. A damaged miniSEED file (bytes that are no record, a
    truncated last record, records that do not decode, a file cut at a record boundary; see
    :mod:`unmix.io.integrity`) is refused unless ``allow_damaged``: then the records that decode cleanly are used and
    every trace carries the damage in ``stats.unmix_damage`` (a list of sentences).

    ``window`` (start, end): only the samples in that span. A miniSEED file is then read by libmseed's time
    selection, so memory follows the window, not the file; the caller has checked the file's structure
    (:func:`unmix.io.integrity.layout`), and any decoding complaint in the window refuses it. A window with no
    samples (a gap of the file) gives an empty stream.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError("no such file", path)
    if not path.is_file():
        raise InputFileError("not a regular file", path)
    if path.stat().st_size == 0:
        raise InputFileError("file is empty (0 bytes)", path)
    fmt = _choose_format(path, format)
    stream, error, complaints = _obspy_read(path, fmt, window)
    damage: list[str] = []
    if window is not None and fmt == "MSEED":
        if complaints:
            raise InputFileError(f"damaged miniSEED: libmseed says {complaints[0]} (--allow-damaged uses the "
                                 "readable part)", path)
    elif fmt == "MSEED":
        damage, salvaged = mseed_damage(path, stream, complaints)
        if damage and not allow_damaged:
            raise InputFileError(f"damaged miniSEED: {'; '.join(damage)} (--allow-damaged uses the readable part)",
                                 path)
        stream = salvaged if salvaged is not None else stream
    if stream is None:
        raise InputFileError(f"corrupt or truncated {fmt} data ({error})", path)
    if len(stream) == 0 and window is not None:
        return stream  # nothing in this span of the file (a gap): not an error
    if len(stream) == 0:
        raise InputFileError("contains no waveform traces" + (f" ({'; '.join(damage)})" if damage else ""), path)
    for tr in stream:
        tr.stats.unmix_source = str(path)
        if damage:
            tr.stats.unmix_damage = list(damage)
    check_samples(stream, path)
    return stream


def _obspy_read(path: Path, fmt: str, window: TimeWindow | None = None
                ) -> tuple[Stream | None, str, list[str]]:
    """ObsPy's read of ``path`` as ``fmt`` (within ``window``): (stream or None, the error in one line, libmseed's
    complaints)."""
    span = {} if window is None else {"starttime": window.start, "endtime": window.end}
    source = glob.escape(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if window is not None and window.ranges is not None and fmt == "MSEED":
                if not window.ranges:
                    return Stream(), "", []
                source = io.BytesIO(_byte_ranges(path, window.ranges))
            stream, error = read(source, format=fmt, **span), ""
        except Exception as exc:  # ObsPy raises many types for corrupt data; all are input problems
            stream, error = None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    complaints = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, InternalMSEEDWarning)]
    return stream, error, complaints


def _byte_ranges(path: Path, ranges: tuple[tuple[int, int], ...]) -> bytes:
    """The bytes of ``path`` in ``ranges``, one after the other."""
    with open(path, "rb") as fh:
        parts = []
        for a, b in ranges:
            fh.seek(a)
            parts.append(fh.read(b - a))
    return b"".join(parts)


def check_samples(stream: Stream, path: str | Path | None = None) -> None:
    """Reject traces that no analysis can use: non-numeric, fewer than 2 samples, NaN or infinite samples."""
    for tr in stream:
        if not np.issubdtype(tr.data.dtype, np.number):
            raise DataError(f"trace {tr.id} has non-numeric samples ({tr.data.dtype})", path)
        if tr.stats.npts < 2:
            raise DataError(f"trace {tr.id} has only {tr.stats.npts} sample(s); at least 2 are needed", path)
        if not np.isfinite(tr.stats.sampling_rate) or tr.stats.sampling_rate <= 0:
            raise DataError(f"trace {tr.id} has an invalid sampling rate {tr.stats.sampling_rate}", path)
        if np.issubdtype(tr.data.dtype, np.floating):
            bad = ~np.isfinite(np.ma.getdata(tr.data))
            if bad.any():
                first = tr.stats.starttime + int(np.argmax(bad)) / tr.stats.sampling_rate
                raise DataError(
                    f"trace {tr.id} has {int(bad.sum())} NaN/infinite sample(s), first at {first}", path
                )


def read_stream(
    inputs: str | Path | Iterable[str | Path],
    format: str | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    allow_damaged: bool = False,
    window: TimeWindow | None = None,
) -> Stream:
    """Read every file named by ``inputs`` into one Stream (inputs on disk are never modified).

    Files found by walking a directory that are not waveforms are skipped; a file named explicitly must be readable.
    ``allow_damaged``, ``window``: see :func:`read_file`.
    """
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    inputs = list(inputs)
    named = [Path(os.path.expanduser(str(i))) for i in inputs]
    explicit = {p.resolve() for p in named if p.is_file()}
    files = expand_inputs(inputs)
    stream = Stream()
    skipped: list[Path] = []
    for path in iterate(files, len(files), progress, token, "reading"):
        try:
            stream += read_file(path, format=format, allow_damaged=allow_damaged, window=window)
        except InputFileError as exc:
            if path.resolve() in explicit or "unknown or unsupported" not in exc.problem:
                raise
            skipped.append(path)
    if len(stream) == 0 and window is None:
        where = ", ".join(str(i) for i in inputs)
        raise InputFileError(f"no readable waveform data ({len(skipped)} file(s) skipped as unknown formats)", where)
    return stream
