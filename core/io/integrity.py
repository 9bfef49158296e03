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
import os
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


class _FileBytes:
    """A file's bytes as an int8 array that is read 16 MiB at a time: slices of at most that length (a record, a
    header) cost one read when they fall outside the block held, so a walk over a large file holds one block, not
    the file (a memory map would count every page it touched as resident)."""

    BLOCK = 1 << 24

    def __init__(self, path: str | Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 (closed by close())
        self.size = os.fstat(self._fh.fileno()).st_size
        self._base, self._buf = 0, np.zeros(0, np.int8)

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop = key.start or 0, min(self.size, key.stop if key.stop is not None else self.size)
        if start < self._base or stop > self._base + self._buf.size:
            self._fh.seek(start)
            self._base, self._buf = start, np.frombuffer(self._fh.read(max(self.BLOCK, stop - start)), np.int8)
        return self._buf[start - self._base:stop - self._base]

    def close(self) -> None:
        self._fh.close()


def _skip_control_headers(path: str | Path, data: _FileBytes) -> int:
    """Offset of the first data record: a full SEED volume's control headers are skipped (ObsPy does the same)."""
    if not _is_control_header(data[0:8]):
        return 0
    try:
        length = int(get_record_information(path)["record_length"])
    except Exception:  # no data record at all: the walk reports the bytes
        return 0
    off = 0
    while off < data.size and _is_control_header(data[off:off + 8]):
        off += length
    return min(off, int(data.size))


def walk(path: str | Path, heads: bytearray | None = None) -> Walk:
    """Walk ``path`` record by record (libmseed's ``ms_detect``), collecting unreadable byte ranges and a cut tail;
    ``heads`` gets the fixed header (48 bytes) of every record found, in order."""
    data = _FileBytes(path)
    try:
        return _walk(path, data, heads)
    finally:
        data.close()


def _walk(path: str | Path, data: _FileBytes, heads: bytearray | None) -> Walk:
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
            if heads is not None:
                heads += data[off:off + _FIXED_HEADER].tobytes()
            off += length
            continue
        bad_from = off if bad_from is None else bad_from
        off = min(off + STEP, out.size)
    if bad_from is not None:
        out.bad.append((bad_from, out.size))
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


def _lost_time(w: Walk, hd: Headers | None, spans: list[tuple[int, int]]) -> str:
    """The time a channel lost where unreadable bytes sit between two of its records (first ranges only)."""
    if hd is None:
        return ""
    index = {off: i for i, (off, _) in enumerate(w.records)}
    ends = {off + n: i for i, (off, n) in enumerate(w.records)}
    words = []
    for a, b in spans[:3]:
        i, j = ends.get(a), index.get(b)
        if i is not None and j is not None and hd.ids[i] == hd.ids[j] and hd.rate[i] > 0:
            words.append(f"{hd.ids[i].split('.')[-1]} {UTCDateTime(hd.end[i])} – "
                         f"{UTCDateTime(hd.start[j] - 1.0 / hd.rate[j])}")
    return f"; samples lost: {', '.join(words)}" if words else ""


def _structure(w: Walk, hd: Headers | None = None) -> list[str]:
    """Words for bytes that are no record (with the time they held, when ``hd`` gives it) and for a cut record."""
    found: list[str] = []
    reclen = w.record_length
    tail = w.bad[-1] if w.bad and w.bad[-1][1] == w.size and w.cut is None else None
    middle = [r for r in w.bad if r != tail]
    total = len(w.records) + sum(-(-(b - a) // reclen) for a, b in middle) + (w.cut is not None)
    if middle:
        lost = sum(-(-(b - a) // reclen) for a, b in middle)
        found.append(f"{lost} of {total} records unreadable (bytes {_ranges(middle)}{_lost_time(w, hd, middle)})")
    if w.cut is not None:
        off, length = w.cut
        found.append(f"the last record is truncated at byte {w.size} ({w.size - off} of its {length} bytes, "
                     f"starting at byte {off})")
    if tail is not None:
        a, b = tail
        found.append(f"the last {b - a} bytes (from byte {a}) are not miniSEED records (cut or appended data)")
    return found


def _decode_each(path: Path, w: Walk) -> tuple[list[tuple[int, int]], list[str]]:
    """Find the records that do not decode cleanly (halving the record list, so a long file with one bad record
    costs a few reads, not one per record); returns the good records and words for the bad ones."""
    blob = path.read_bytes()
    failed: dict[str, list[tuple[int, int]]] = {}
    pending = [list(w.records)] if w.records else []
    while pending:
        group = pending.pop()
        problem = _decode_problem(b"".join(blob[o:o + n] for o, n in group))
        if problem is None:
            continue
        if len(group) > 1:
            pending += [group[len(group) // 2:], group[:len(group) // 2]]
        else:
            failed.setdefault(problem, []).append((group[0][0], group[0][0] + group[0][1]))
    bad = {a for spans in failed.values() for a, _ in spans}
    good = [r for r in w.records if r[0] not in bad]
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


@dataclass
class Headers:
    """Identity and timing of records, from their fixed headers (blockette 100/1001 refinements ignored)."""

    ids: list[str]
    start: np.ndarray  # timestamp of the first sample (s)
    end: np.ndarray  # timestamp one sample after the last (s); equal to start where the rate is unknown
    rate: np.ndarray


def _u16(h: np.ndarray, col: int, big: np.ndarray) -> np.ndarray:
    hi, lo = h[:, col].astype(np.int64), h[:, col + 1].astype(np.int64)
    return np.where(big, hi * 256 + lo, lo * 256 + hi)


def headers(path: str | Path, records: list[tuple[int, int]]) -> Headers:
    """Parse the fixed header of every record (vectorised; the walk has already checked that each one is valid)."""
    data = _FileBytes(path)
    try:
        heads = b"".join(data[o:o + _FIXED_HEADER].tobytes() for o, _ in records)
    finally:
        data.close()
    return parse_headers(heads)


def parse_headers(heads: bytes | bytearray) -> Headers:
    """:class:`Headers` of records from their fixed headers (48 bytes each, one after the other)."""
    h = np.frombuffer(bytes(heads), np.uint8).reshape(-1, _FIXED_HEADER)
    year_be, day_be = h[:, 20].astype(np.int64) * 256 + h[:, 21], h[:, 22].astype(np.int64) * 256 + h[:, 23]
    big = (year_be >= 1900) & (year_be <= 2500) & (day_be >= 1) & (day_be <= 366)
    year, day = _u16(h, 20, big), _u16(h, 22, big)
    signed = [np.where(v >= 32768, v - 65536, v) for v in (_u16(h, 32, big), _u16(h, 34, big))]
    factor, mult = (v.astype(np.float64) for v in signed)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.select([(factor > 0) & (mult > 0), (factor > 0) & (mult < 0), (factor < 0) & (mult > 0),
                          (factor < 0) & (mult < 0)], [factor * mult, -factor / mult, -mult / factor,
                                                        1.0 / (factor * mult)], 0.0)
    tc_bytes = h[:, 40:44].astype(np.int64)
    weights = np.array([1 << 24, 1 << 16, 1 << 8, 1])
    tc = np.where(big, (tc_bytes * weights).sum(1), (tc_bytes * weights[::-1]).sum(1))
    tc = np.where(tc >= 1 << 31, tc - (1 << 32), tc)
    jan1 = (np.clip(year, 1900, 2500) - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    start = ((jan1 + day - 1) * 86400 + h[:, 24] * 3600.0 + h[:, 25] * 60.0 + h[:, 26]
             + _u16(h, 28, big) * 1e-4 + np.where(h[:, 36] & 2, 0, tc) * 1e-4)
    with np.errstate(divide="ignore", invalid="ignore"):
        end = start + np.where(rate > 0, _u16(h, 30, big) / rate, 0.0)
    keys, inverse = np.unique(h[:, 8:20].copy().view("S12").ravel(), return_inverse=True)
    names = [_seed_id(k) for k in keys]
    return Headers([names[i] for i in inverse], start, end, rate)


def _seed_id(key: bytes) -> str:
    text = key.ljust(12).decode("ascii", "replace")
    return f"{text[10:12].strip()}.{text[0:5].strip()}.{text[5:7].strip()}.{text[7:10].strip()}"


def _islands(hd: Headers) -> list[int]:
    """Records whose start time fits none of their channel's records while their neighbours leave a hole of exactly
    their length: a header time that was corrupted (ObsPy would show a gap plus a lone record elsewhere)."""
    found: list[int] = []
    ids = np.array(hd.ids)
    for cid in dict.fromkeys(hd.ids):
        idx = np.flatnonzero((ids == cid) & (hd.rate > 0))
        if len(idx) < 3:
            continue
        s, e, tol = hd.start[idx], hd.end[idx], 0.5 / hd.rate[idx]
        hole = s[2:] - e[:-2]  # what the neighbours leave open: exactly this record's length when it belongs there
        misplaced = np.abs(s[1:-1] - e[:-2]) > tol[1:-1]
        candidates = np.flatnonzero(misplaced & (np.abs(hole - (e[1:-1] - s[1:-1])) <= tol[1:-1])) + 1
        for k in candidates:
            others = np.delete(np.arange(len(idx)), k)
            if np.abs(e[others] - s[k]).min() > tol[k] and np.abs(s[others] - e[k]).min() > tol[k]:
                found.append(int(idx[k]))
    return found


def _island_words(hd: Headers, islands: list[int], records: list[tuple[int, int]]) -> list[str]:
    words = []
    for cid in dict.fromkeys(hd.ids[i] for i in islands):
        mine = [i for i in islands if hd.ids[i] == cid]
        spans = _join([(records[i][0], records[i][0] + records[i][1]) for i in mine])
        i = mine[0]
        due = UTCDateTime(hd.end[max(j for j in range(i) if hd.ids[j] == cid)])
        words.append(f"{len(mine)} record(s) of {cid.split('.')[-1]} carry start times that fit none of their "
                     f"neighbours (corrupt header time? e.g. {UTCDateTime(hd.start[i])} where {due} was due; "
                     f"bytes {_ranges(spans)})")
    return words


def _looks_cut(hd: Headers, keep: np.ndarray) -> str | None:
    """A file cut at a record boundary: its last record's component ends well before another of the same instrument."""
    rows = np.flatnonzero(keep & (hd.rate > 0))
    if len(rows) == 0:
        return None
    last = int(rows[-1])
    instrument = hd.ids[last].rsplit(".", 1)[0] + "."
    ends: dict[str, float] = {}
    for i in rows:
        cid = hd.ids[i]
        if cid[:-1] == hd.ids[last][:-1] and cid.startswith(instrument):
            ends[cid] = max(ends.get(cid, hd.end[i]), float(hd.end[i]))
    if len(ends) < 2:
        return None
    other = max(ends, key=lambda k: ends[k])
    short = ends[other] - ends[hd.ids[last]]
    if short <= max(60.0, 3 * float(hd.end[last] - hd.start[last])):
        return None
    ends_at = UTCDateTime(ends[hd.ids[last]] - 1.0 / float(hd.rate[last]))
    return (f"the file looks cut short: its last whole record ({hd.ids[last].split('.')[-1]}) ends at {ends_at}, "
            f"{_duration(short)} before {other.split('.')[-1]} ends")


def _duration(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def mseed_damage(path: str | Path, stream: Stream | None, complaints: list[str]) -> tuple[list[str], Stream | None]:
    """Describe what is damaged in a miniSEED file and read back only what is sound.

    ``stream`` is ObsPy's read of the whole file (``None`` when it raised) and ``complaints`` the warnings it gave.
    Returns the damage (empty for a sound file) and a stream of the sound records only, or ``None`` when ``stream``
    can be used as it is (ObsPy already skipped the bytes that are no record).
    """
    path = Path(path)
    w = walk(path)
    try:
        damage = _structure(w, headers(path, w.records) if w.bad and w.records else None)
    except Exception:  # the lost time is a courtesy; the byte ranges say what is damaged
        damage = _structure(w)
    good = list(w.records)
    structural = ("Not a SEED record", "Last record only has")  # what the walk already describes
    if stream is None or any(not any(s in c for s in structural) for c in complaints):
        good, words = _decode_each(path, w)
        damage += words
        if not words and stream is None:
            damage.append("ObsPy cannot read it although every record decodes alone")
    if good:
        hd = headers(path, good)
        islands = _islands(hd)
        damage += _island_words(hd, islands, good)
        keep = np.ones(len(good), dtype=bool)
        keep[islands] = False
        cut = _looks_cut(hd, keep)
        damage += [cut] if cut else []
        good = [r for r, k in zip(good, keep, strict=True) if k]
    salvaged = _read_records(path, good) if damage and len(good) < len(w.records) else None
    return damage, salvaged


@dataclass(frozen=True)
class Layout:
    """What a miniSEED file's record headers say, without decoding a sample: whether its structure is sound (the
    damage :func:`mseed_damage` would name without decoding), its span and its channels' rates."""

    damage: tuple[str, ...]
    start: float  # first sample (s, POSIX)
    end: float  # one sample after the last
    rates: dict[str, float]  # channel id -> sampling rate (Hz)
    chunks: np.ndarray  # (n, 4) float64: first byte, byte after the last, first and last time of runs of records

    def ranges(self, start: float, end: float) -> tuple[tuple[int, int], ...]:
        """Byte ranges (merged where they meet) of the runs of records that hold samples in ``[start, end]``."""
        rows = self.chunks[(self.chunks[:, 3] >= start) & (self.chunks[:, 2] <= end)]
        out: list[list[int]] = []
        for a, b in rows[:, :2].astype(np.int64):
            if out and out[-1][1] == a:
                out[-1][1] = int(b)
            else:
                out.append([int(a), int(b)])
        return tuple((a, b) for a, b in out)


#: Records per run in :attr:`Layout.chunks` (≈ 0.5 MB of 512-byte records): how finely a window's bytes are found.
CHUNK_RECORDS = 1024


def layout(path: str | Path) -> Layout | None:
    """The :class:`Layout` of ``path`` from one walk over its records; ``None`` when it holds no record with a
    known rate. Decoding problems (Steim frames that fail) are not seen here: a reader must still watch libmseed's
    warnings."""
    heads = bytearray()
    w = walk(path, heads)
    if not w.records:
        return None
    hd = parse_headers(heads)
    del heads
    damage = _structure(w, hd)
    islands = _islands(hd)
    damage += _island_words(hd, islands, w.records)
    keep = np.ones(len(w.records), dtype=bool)
    keep[islands] = False
    damage += [cut] if (cut := _looks_cut(hd, keep)) else []
    known = hd.rate > 0
    if not known.any():
        return None
    ids = np.array(hd.ids)
    rates = {str(cid): float(hd.rate[known][np.argmax(ids[known] == cid)]) for cid in np.unique(ids[known])}
    return Layout(tuple(damage), float(hd.start[known].min()), float(hd.end[known].max()), rates,
                  _chunks(w.records, hd))


def _chunks(records: list[tuple[int, int]], hd: Headers) -> np.ndarray:
    """:attr:`Layout.chunks`: runs of :data:`CHUNK_RECORDS` consecutive records (a new run where bytes between
    records are skipped or where time does not run on, e.g. at a gap or the next channel), each with its byte span
    and time span."""
    where = np.array(records, dtype=np.int64)
    end = where[:, 0] + where[:, 1]
    t_end = np.maximum(hd.end, hd.start)
    breaks = np.flatnonzero((where[1:, 0] != end[:-1]) | (np.abs(hd.start[1:] - t_end[:-1]) > 1.0)) + 1
    starts = np.union1d(np.arange(0, len(records), CHUNK_RECORDS), breaks)
    stops = np.append(starts[1:], len(records))
    return np.array([(where[a, 0], end[b - 1], hd.start[a:b].min(), t_end[a:b].max())
                     for a, b in zip(starts, stops, strict=True)], dtype=np.float64)


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
