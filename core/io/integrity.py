"""Integrity of miniSEED files: every byte must belong to a record that parses and decodes, or the damage is named.

ObsPy (libmseed) reads what it can and only warns about the rest: bytes that are no record are skipped ("Not a SEED
record"), a last record cut short is dropped without a word, Steim frames that fail their integrity check are kept.
:func:`mseed_damage` walks the file record by record with libmseed's own header detector (the walk libmseed does,
so both agree on what was lost), decodes records one by one where ObsPy complained, and describes every loss in
words a user can act on. A file cut exactly at a record boundary leaves no broken bytes; it is recognised when its
last (whole) record belongs to a component that ends well before another component of the same instrument in that
file.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read
from obspy.io.mseed import InternalMSEEDWarning
from obspy.io.mseed.headers import clibmseed
from obspy.io.mseed.util import get_record_information

STEP = 128  #: libmseed's resynchronisation step (its smallest record length) after bytes that are no record
MAX_RECORD = 1 << 20  #: libmseed's largest record length
_FIXED_HEADER = 48


@dataclass
class Walk:
    """The records of one miniSEED file as libmseed's detector sees them."""

    size: int
    records: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of every record found
    bad: list[tuple[int, int]] = field(default_factory=list)  # [start, end) byte ranges that are no record
    cut: tuple[int, int] | None = None  # (offset, declared length) of a last record running past the file's end

    @property
    def record_length(self) -> int:
        """The most common record length (512 when the file has no whole record)."""
        lengths = Counter(n for _, n in self.records)
        return lengths.most_common(1)[0][0] if lengths else 512


def _is_control_header(head: np.ndarray) -> bool:
    """A SEED volume's control header (sequence digits, then V/A/S/T): skipped by ObsPy, not damage."""
    text = bytes(head[:8].astype(np.uint8))
    return len(text) == 8 and text[:6].strip().isdigit() and text[6:7] in b"VAST"


def _skip_control_headers(path: str | Path, data: np.ndarray) -> int:
    """Offset of the first data record: a full SEED volume's control headers are skipped (ObsPy does the same)."""
    if not _is_control_header(data[:8]):
        return 0
    try:
        length = int(get_record_information(path)["record_length"])
    except Exception:  # no data record at all: the walk reports the bytes
        return 0
    off = 0
    while off < data.size and _is_control_header(data[off:off + 8]):
        off += length
    return min(off, int(data.size))


def walk(path: str | Path) -> Walk:
    """Walk ``path`` record by record (libmseed's ``ms_detect``), collecting unreadable byte ranges and a cut tail."""
    data = np.memmap(path, dtype=np.int8, mode="r")
    out = Walk(int(data.size))
    off, bad_from = _skip_control_headers(path, data), None
    while off < out.size:
        remaining = out.size - off
        n = min(remaining, MAX_RECORD)
        length = int(clibmseed.lib.ms_detect(data[off:off + n], n)) if remaining >= _FIXED_HEADER else -1
        if length == 0 and remaining in {1 << k for k in range(7, 21)}:
            length = remaining  # no blockette 1000: the last record fills the rest (ObsPy reads it so too)
        if length > 0:
            if bad_from is not None:
                out.bad.append((bad_from, off))
                bad_from = None
            if length > remaining:
                out.cut = (off, length)
                break
            out.records.append((off, length))
            off += length
            continue
        bad_from = off if bad_from is None else bad_from
        off = min(off + STEP, out.size)
    if bad_from is not None:
        out.bad.append((bad_from, out.size))
    del data
    return out


def _ranges(spans: list[tuple[int, int]], limit: int = 3) -> str:
    text = ", ".join(f"{a}–{b - 1}" for a, b in spans[:limit])
    return text + (f" and {len(spans) - limit} more range(s)" if len(spans) > limit else "")


def _join(offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge adjacent [start, end) ranges."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(offsets):
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _structure(w: Walk) -> list[str]:
    """Words for bytes that are no record and for a cut last record."""
    found: list[str] = []
    reclen = w.record_length
    tail = w.bad[-1] if w.bad and w.bad[-1][1] == w.size and w.cut is None else None
    middle = [r for r in w.bad if r != tail]
    total = len(w.records) + sum(-(-(b - a) // reclen) for a, b in middle) + (w.cut is not None)
    if middle:
        lost = sum(-(-(b - a) // reclen) for a, b in middle)
        found.append(f"{lost} of {total} records unreadable (bytes {_ranges(middle)})")
    if w.cut is not None:
        off, length = w.cut
        found.append(f"the last record is truncated at byte {w.size} ({w.size - off} of its {length} bytes, "
                     f"starting at byte {off})")
    if tail is not None:
        a, b = tail
        found.append(f"the last {b - a} bytes (from byte {a}) are not miniSEED records (cut or appended data)")
    return found


def _decode_each(path: Path, w: Walk) -> tuple[list[tuple[int, int]], list[str]]:
    """Decode every record alone; returns the records that decode cleanly and words for those that do not."""
    good: list[tuple[int, int]] = []
    failed: dict[str, list[tuple[int, int]]] = {}
    with open(path, "rb") as fh:
        for off, length in w.records:
            fh.seek(off)
            chunk = fh.read(length)
            problem = _decode_problem(chunk)
            if problem is None:
                good.append((off, length))
            else:
                failed.setdefault(problem, []).append((off, off + length))
    words = [f"{len(spans)} record(s) {problem} (bytes {_ranges(_join(spans))})" for problem, spans in failed.items()]
    return good, words


def _decode_problem(chunk: bytes) -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read(io.BytesIO(chunk), format="MSEED")
        except Exception as exc:  # libmseed raises several types for undecodable data
            detail = " ".join(str(exc).split()).split(": ")[-1]
            return f"cannot be decoded ({detail})"
    texts = [str(c.message) for c in caught if issubclass(c.category, InternalMSEEDWarning)]
    if any("integrity check" in t for t in texts):
        return "fail the Steim integrity check (corrupt samples)"
    return f"are suspect ({texts[0]})" if texts else None


def _looks_cut(path: Path, w: Walk, stream: Stream) -> str | None:
    """A file cut at a record boundary: its last record ends well before another component of the same instrument."""
    if not w.records:
        return None
    off, length = w.records[-1]
    with open(path, "rb") as fh:
        fh.seek(off)
        info = get_record_information(io.BytesIO(fh.read(length)))
    last_id = f"{info['network']}.{info['station']}.{info['location']}.{info['channel']}"
    ends: dict[str, UTCDateTime] = {}
    for tr in stream:
        if tr.id[:-1] == last_id[:-1]:
            ends[tr.id] = max(ends.get(tr.id, tr.stats.endtime), tr.stats.endtime)
    if last_id not in ends or len(ends) < 2:
        return None
    other = max(ends, key=lambda k: ends[k])
    short = float(ends[other] - ends[last_id])
    span = float(info["endtime"] - info["starttime"]) + (1.0 / info["samp_rate"] if info["samp_rate"] else 0.0)
    if short <= max(60.0, 3 * span):
        return None
    return (f"the file looks cut short: its last whole record ({info['channel']}) ends at {ends[last_id]}, "
            f"{_duration(short)} before {other.split('.')[-1]} ends")


def _duration(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def mseed_damage(path: str | Path, stream: Stream | None, complaints: list[str]) -> tuple[list[str], Stream | None]:
    """Describe what is damaged in a miniSEED file and read back only what decodes cleanly.

    ``stream`` is ObsPy's read of the whole file (``None`` when it raised) and ``complaints`` the warnings it gave.
    Returns the damage (empty for a sound file) and a stream of the records that decode cleanly, or ``None`` when
    ``stream`` can be used as it is.
    """
    path = Path(path)
    w = walk(path)
    damage = _structure(w)
    salvaged = None
    structural = ("Not a SEED record", "Last record only has")  # what the walk already describes
    decode_trouble = stream is None or any(not any(s in c for s in structural) for c in complaints)
    if decode_trouble:
        good, words = _decode_each(path, w)
        damage += words
        if words:
            salvaged = _read_records(path, good)
        elif stream is None:
            damage.append("ObsPy cannot read it although every record decodes alone")
    read_back = salvaged if salvaged is not None else stream
    if read_back is not None:
        try:
            cut = _looks_cut(path, w, read_back)
        except Exception:  # a last header ObsPy's parser rejects: the walk already vouched for its structure
            cut = None
        if cut:
            damage.append(cut)
    return damage, salvaged


def _read_records(path: Path, records: list[tuple[int, int]]) -> Stream:
    buf = io.BytesIO()
    with open(path, "rb") as fh:
        for off, length in records:
            fh.seek(off)
            buf.write(fh.read(length))
    if buf.tell() == 0:
        return Stream()
    buf.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read(buf, format="MSEED")
