"""FDSN download into a local cache: miniSEED day files and StationXML, with a manifest so nothing is fetched twice.

``fetch`` asks a data centre (IRIS/EarthScope, IPGP or any FDSN web-service URL) for one request (network, station,
location, channel, time span) through its FDSN web services and writes, under the output folder:

- an **SDS archive** (SeisComP Data Structure, read by ObsPy's ``obspy.clients.filesystem.sds.Client``, SeisComP and
  Snuffler): ``YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY`` per channel and UTC day, the miniSEED records exactly
  as the data centre sent them (a record crossing midnight is in both day files; readers merge such overlaps). A
  request with wildcards (``BH?``) is split into one file per channel received.
- ``NET.STA.LOC.CHA.xml``: StationXML with the full response, covering the span asked for so far.
- ``fetch-manifest.json``: per request and day (keyed ``NET.STA.LOC.CHA.YYYY-MM-DD.mseed``, wildcards made
  file-name safe: ``?`` → ``_``, ``*`` → ``~``, ``,`` → ``+``) the spans received or known to be empty and the SDS
  files written; per SDS file its size. Caches of the earlier naming (day files of that name in the folder itself)
  are migrated into the SDS layout once, at the next fetch into the folder.

A later request downloads only the spans the manifest does not cover and whose files are still on disk with the
recorded size, so a second identical run makes no request at all and an interrupted run resumes where it stopped.
Each response is streamed into a temporary file in the cache folder under a size cap and a total deadline per request
(``unmix.download``; transient failures are retried with backoff), then checked before it enters the cache: the
miniSEED record by record (complete, readable, only the stream ids asked for, every record within the span asked
for), the StationXML parsed (only the channels asked for, one for the span, with responses). Files are written
atomically (temporary name, then rename), so a cut connection never leaves a half-written day file, and wrong data
are never cached nor recorded in the manifest. Failures of single requests (HTTP errors, cut connections, wrong data)
are collected in the report while the other days go on; an unreachable service stops the run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import io
import json
import math
import mmap
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from obspy import UTCDateTime

from unmix import __version__
from unmix.atomic import atomic_path
from unmix.download import Limits, RequestFailed, get, query_url, size_text
from unmix.errors import ConfigError, InputFileError, OutputExistsError, UnmixError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

PROVIDERS = {"IRIS": "EARTHSCOPE", "EARTHSCOPE": "EARTHSCOPE", "IPGP": "IPGP"}
MANIFEST = "fetch-manifest.json"
CHECKED = 1  # manifest entries whose files were checked against the request (ids, span) before they were cached
DAY = 86400.0
_TOL = 1e-3  # seconds: spans closer than this are one span; pieces shorter than this are not requested
_SAFE = str.maketrans({"?": "_", "*": "~", ",": "+"})
_CODE = re.compile(r"^[A-Za-z0-9?*,_-]*$")


class FetchError(UnmixError):
    """A data centre cannot be used: unreachable, no FDSN service, or no data at all for the request."""


@dataclass
class FetchReport:
    """What a fetch did: every file of the request now on disk, which were (re)written, and what failed."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    downloaded: list[Path] = field(default_factory=list)
    cached: list[Path] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # cached by an older Unmix, found wrong, removed
    requests: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def waveform_files(self) -> list[Path]:
        """The SDS day files of the request (every file but the StationXML)."""
        return [p for p in self.files if p.suffix != ".xml"]

    def summary(self) -> str:
        """One line for the CLI and the GUI."""
        n_new = len(self.downloaded)
        if self.requests == 0 and not self.failures:
            head = "nothing to download, all present"
        else:
            head = f"{n_new} file(s) written, {size_text(self.bytes)} in {self.requests} request(s)"
        parts = [head, f"{len(self.cached)} already present"]
        if self.empty:
            parts.append(f"{len(self.empty)} span(s) without data")
        if self.replaced:
            parts.append(f"{len(self.replaced)} wrong file(s) of an earlier run removed")
        if self.failures:
            parts.append(f"{len(self.failures)} failed")
        return f"{self.out_dir}: " + ", ".join(parts)


# --- spans ------------------------------------------------------------------------------------------------------------

Span = tuple[float, float]


def _union(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + _TOL:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _missing(want: Span, have: list[Span]) -> list[Span]:
    """Parts of ``want`` not covered by ``have``."""
    out, t = [], want[0]
    for a, b in _union(have):
        if b <= t or a >= want[1]:
            continue
        if a > t + _TOL:
            out.append((t, min(a, want[1])))
        t = max(t, b)
    if want[1] > t + _TOL:
        out.append((t, want[1]))
    return out


def _iso(t: float) -> str:
    return str(UTCDateTime(t))


def _span_text(span: Span) -> str:
    a, b = UTCDateTime(span[0]), UTCDateTime(span[1])
    fmt = "%Y-%m-%dT%H:%M:%S"
    return f"{a.strftime(fmt)}–{b.strftime(fmt)}"


def day_spans(start: UTCDateTime, end: UTCDateTime) -> Iterator[tuple[str, Span]]:
    """The request cut at UTC midnights: (``YYYY-MM-DD``, (t0, t1)) per day touched."""
    t0, t1 = float(start.timestamp), float(end.timestamp)
    day = math.floor(t0 / DAY) * DAY
    while day < t1:
        a, b = max(t0, day), min(t1, day + DAY)
        if b - a > _TOL:
            yield UTCDateTime(day).strftime("%Y-%m-%d"), (a, b)
        day += DAY


# --- names and options ------------------------------------------------------------------------------------------------


def stream_id(network: str, station: str, location: str, channel: str) -> str:
    return f"{network}.{station}.{location}.{channel}"


def day_file_name(network: str, station: str, location: str, channel: str, day: str) -> str:
    """``XB.ELYSE.02.BH_.2019-07-26.mseed`` for channel ``BH?`` (wildcards made file-name safe)."""
    return f"{stream_id(network, station, location, channel).translate(_SAFE)}.{day}.mseed"


def sds_path(network: str, station: str, location: str, channel: str, t: float | UTCDateTime) -> str:
    """SDS path of one channel's day file, relative to the archive root:
    ``2019/XB/ELYSE/BHU.D/XB.ELYSE.02.BHU.D.2019.207`` (the UTC day that holds ``t``)."""
    day = UTCDateTime(t)
    year, doy = day.year, day.julday
    return f"{year}/{network}/{station}/{channel}.D/{network}.{station}.{location}.{channel}.D.{year}.{doy:03d}"


def station_file_name(network: str, station: str, location: str, channel: str) -> str:
    return f"{stream_id(network, station, location, channel).translate(_SAFE)}.xml"


def resolve_provider(provider: str) -> str:
    """ObsPy base URL or short name for ``IRIS``/``EARTHSCOPE``/``IPGP`` or an ``http(s)://`` URL."""
    from obspy.clients.fdsn.header import URL_MAPPINGS

    p = provider.strip()
    if p.upper() in PROVIDERS:
        short = PROVIDERS[p.upper()]
        if short == "EARTHSCOPE" and short not in URL_MAPPINGS:  # older ObsPy knows EarthScope as IRIS only
            return "IRIS"
        return short
    if re.match(r"^https?://", p, re.IGNORECASE):
        return p.rstrip("/")
    raise ConfigError(f"unknown provider {provider!r}: use IRIS, IPGP or an http(s):// URL of an FDSN web service")


def _provider_url(base: str) -> str:
    from obspy.clients.fdsn.header import URL_MAPPINGS

    return URL_MAPPINGS.get(base, base)


def _time(value: str | UTCDateTime, name: str) -> UTCDateTime:
    if isinstance(value, UTCDateTime):
        return value
    try:
        return UTCDateTime(str(value))
    except Exception:
        raise ConfigError(f"{name} {value!r} is not a date/time (e.g. 2019-07-26 or 2019-07-26T11:49:00)") from None


def _code(value: str, name: str, required: bool = True) -> str:
    value = value.strip()
    if (required and not value) or not _CODE.match(value):
        raise ConfigError(f"{name} {value!r} is not a valid FDSN code (letters, digits, ? * , wildcards)")
    return value


# --- manifest ---------------------------------------------------------------------------------------------------------


class Manifest:
    """The cache index of one output folder: per file, the spans received (``covered``) or known empty.

    Saving re-reads the file and replaces only the entries this run changed, so two runs writing to one folder
    (GUI and command line) do not lose each other's entries.
    """

    def __init__(self, out_dir: Path, fresh_if_unreadable: bool = False) -> None:
        self.path = out_dir / MANIFEST
        self.touched: set[str] = set()
        try:
            self.data = self._read()
        except InputFileError:
            if not fresh_if_unreadable:
                raise
            self.data = {"version": 1, "files": {}}

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "files": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
                raise ValueError("no 'files' table")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(f"unreadable fetch manifest ({exc}); pass --overwrite to start afresh",
                                 self.path) from None
        return data

    def entry(self, name: str) -> dict[str, Any]:
        e = self.data["files"].get(name)
        return e if isinstance(e, dict) else {}

    def covered(self, name: str, out_dir: Path) -> list[Span]:
        """Spans of ``name`` received earlier, if its file (or, for a request-day, every SDS file it wrote) is still
        on disk with the size recorded."""
        e = self.entry(name)
        if not e.get("covered"):
            return []
        if "sds" in e:
            ok = isinstance(e["sds"], list) and all(self.sds_ok(rel, out_dir) for rel in e["sds"])
        else:
            path = out_dir / name
            ok = path.is_file() and path.stat().st_size == e.get("size")
        return _spans(e["covered"]) if ok else []

    def sds_ok(self, rel: str, out_dir: Path) -> bool:
        """Whether the SDS file ``rel`` is on disk with the size this manifest recorded for it."""
        path = out_dir / rel
        return path.is_file() and path.stat().st_size == self.entry(rel).get("size")

    def sds_paths(self, name: str, out_dir: Path) -> list[Path]:
        """The SDS files a request-day entry wrote."""
        rels = self.entry(name).get("sds")
        return [out_dir / rel for rel in rels] if isinstance(rels, list) else []

    def record_sds(self, rel: str, stream: str, size: int, source: str) -> None:
        """An SDS file written (by any request: several requests may write one channel-day file)."""
        self.touched.add(rel)
        self.data["files"][rel] = {"id": stream, "size": size, "source": source, "updated": str(UTCDateTime()),
                                   "checked": CHECKED, "kind": "sds"}

    def empty(self, name: str) -> list[Span]:
        return _spans(self.entry(name).get("empty", []))

    def record(self, name: str, stream: str, covered: list[Span], empty: list[Span], size: int | None,
               source: str, sds: list[str] | None = None) -> None:
        self.touched.add(name)
        self.data["files"][name] = {
            "id": stream, "covered": [[_iso(a), _iso(b)] for a, b in _union(covered)],
            "empty": [[_iso(a), _iso(b)] for a, b in _union(empty)], "size": size, "source": source,
            "updated": str(UTCDateTime()), "checked": CHECKED,
        } | ({} if sds is None else {"sds": sorted(set(sds))})

    def checked(self, name: str) -> bool:
        """Whether the file was checked against its request (entries written before downloads were checked lack it)."""
        return self.entry(name).get("checked") == CHECKED

    def mark_checked(self, name: str) -> None:
        self.touched.add(name)
        self.data["files"][name] = self.entry(name) | {"checked": CHECKED}

    def forget(self, name: str) -> None:
        """Drop the entry of ``name`` (its file was found wrong and removed)."""
        self.touched.add(name)
        self.data["files"].pop(name, None)

    def save(self) -> None:
        if not self.touched:
            return
        try:
            current = self._read()
        except InputFileError:
            current = {"version": 1, "files": {}}
        for name in self.touched:
            if name in self.data["files"]:
                current["files"][name] = self.data["files"][name]
            else:
                current["files"].pop(name, None)
        self.data = current
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(current, indent=1, sort_keys=True), encoding="utf-8")


def _spans(value: Any) -> list[Span]:
    """Spans from the manifest's ``[[iso, iso], …]``; a malformed list counts as nothing known."""
    try:
        return [(UTCDateTime(a).timestamp, UTCDateTime(b).timestamp) for a, b in value]
    except Exception:  # noqa: BLE001
        return []


# --- miniSEED records -------------------------------------------------------------------------------------------------


def _records(path: Path) -> list[tuple[int, int, str, float, float]] | None:
    """(offset, length, SEED id, start, end) of every miniSEED record, from :func:`unmix.io.integrity.walk` and its
    header parser; None when the file holds no record that can be told. Bytes that end inside a record or that are no
    record raise ``ValueError`` (ObsPy's reader skips such a last record silently)."""
    from unmix.io.integrity import headers, walk

    w = walk(path)
    if not w.records:
        return None
    if w.cut is not None:
        off, length = w.cut
        raise ValueError(f"incomplete miniSEED: the last record has {w.size - off} of {length} bytes")
    if w.bad:
        first, last = w.bad[0]
        if last == w.size and first >= sum(w.records[-1]):
            raise ValueError(f"incomplete miniSEED: {w.size - first} byte(s) after the last whole record")
        raise ValueError(f"incomplete miniSEED: bytes {first}–{last - 1} are no miniSEED record")
    hd = headers(path, w.records)
    return [(off, n, sid, float(t0), float(t1))
            for (off, n), sid, t0, t1 in zip(w.records, hd.ids, hd.start, hd.end, strict=True)]


# --- the request ------------------------------------------------------------------------------------------------------


def _match(value: str, patterns: str) -> bool:
    """FDSN code match: comma lists of ``?``/``*`` patterns; ``--`` (or an empty pattern) is the empty code."""
    options = ["" if p.strip() == "--" else p.strip() for p in patterns.split(",")]
    return any(fnmatch.fnmatchcase(value, p) for p in options)


@dataclass(frozen=True)
class _Request:
    """The codes asked for (location ``""`` for none)."""

    network: str
    station: str
    location: str
    channel: str

    @property
    def sid(self) -> str:
        return stream_id(self.network, self.station, self.location, self.channel)

    def matches(self, net: str, sta: str, loc: str, cha: str) -> bool:
        return all(_match(v, p) for v, p in zip((net, sta, loc, cha), (self.network, self.station, self.location,
                                                                          self.channel), strict=True))

    def params(self, span: Span) -> dict[str, str]:
        return {"network": self.network, "station": self.station, "location": self.location or "--",
                "channel": self.channel, "starttime": _fdsn_time(span[0]),
                "endtime": _fdsn_time(span[1])}


def _fdsn_time(t: float) -> str:
    """``2019-05-22T23:00:00.000000`` (FDSN web services take UTC without a zone)."""
    return UTCDateTime(t).strftime("%Y-%m-%dT%H:%M:%S.%f")


class _Service:
    """The data centre's FDSN services, asked for lazily (``version`` of each); every request bounded by limits."""

    def __init__(self, url: str, limits: Limits, token: CancelToken) -> None:
        self.url, self.limits, self.token = url, limits, token
        self.agent = f"unmix/{__version__} (FDSN download)"
        self._offers: dict[str, bool] = {}
        if not self.offers("dataselect"):
            raise FetchError(f"{url}: no FDSN web service answers there (check the URL)")

    def offers(self, service: str) -> bool:
        if service not in self._offers:
            probe = Limits(self.limits.timeout, self.limits.deadline, 1_000_000, self.limits.retries,
                           self.limits.retry_delay)
            try:
                status = get(query_url(self.url, service, "version"), io.BytesIO(), probe, self.agent, self.token,
                             retry_connect=False)
            except RequestFailed as exc:
                if exc.kind != "unreachable":
                    raise FetchError(f"{self.url}: the FDSN {service} service fails: {exc.text}") from None
                text = exc.text[len("cannot connect ("):-1] if exc.connect else exc.text
                raise FetchError(f"{self.url}: cannot reach the data centre (no network, or the service is down): "
                                 f"{text}") from None
            self._offers[service] = status == 200
        return self._offers[service]

    def get(self, service: str, params: dict[str, str], sink: BinaryIO) -> int:
        return get(query_url(self.url, service, params=params), sink, self.limits, self.agent, self.token)


# --- checks of what was received --------------------------------------------------------------------------------------


def _check_mseed(path: Path) -> list[tuple[tuple[str, str, str, str], float, float]]:
    """Walk and parse a received miniSEED file; return (codes, start, end) per record (per trace when the records
    have no blockette 1000). Truncated or unreadable data raise ``ValueError``."""
    from obspy import read

    if path.stat().st_size == 0:
        raise ValueError("empty response")
    records = _records(path)
    spans = [(tuple(sid.split(".")), t0, t1) for _, _, sid, t0, t1 in records or []]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            st = read(str(path), format="MSEED", headonly=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"not readable miniSEED ({type(exc).__name__})") from None
    words = ("end of file", "truncat", "not enough", "corrupt")
    bad = [str(w.message) for w in seen if any(k in str(w.message).lower() for k in words)]
    if bad:
        raise ValueError(f"incomplete miniSEED: {bad[0][:160]}")
    if len(st) == 0:
        raise ValueError("no traces in the miniSEED")
    if records is None:
        spans = [((tr.stats.network, tr.stats.station, tr.stats.location, tr.stats.channel),
                  tr.stats.starttime.timestamp, tr.stats.endtime.timestamp + tr.stats.delta) for tr in st]
    return spans


def _mismatches(spans: list[tuple[tuple[str, str, str, str], float, float]], req: _Request, want: Span,
                tol: float = 1.0, verb: str = "was sent") -> list[str]:
    """One line per stream sent that was not asked for, and per stream with records outside the span asked for."""
    wrong: dict[str, int] = {}
    outside: dict[str, Span] = {}
    for codes, a, b in spans:
        sid = ".".join(codes)
        if not req.matches(*codes):
            wrong[sid] = wrong.get(sid, 0) + 1
        elif b < want[0] - tol or a > want[1] + tol:
            lo, hi = outside.get(sid, (a, b))
            outside[sid] = (min(lo, a), max(hi, b))
    lines = [f"{sid} {verb} ({n} record(s)), not {req.sid} as asked" for sid, n in sorted(wrong.items())]
    lines += [f"{sid} {verb} for {_span_text(s)}, outside the span asked for" for sid, s in sorted(outside.items())]
    return lines


def _check_stationxml(path: Path, req: _Request, want: Span) -> list[str]:
    """Problems of a received StationXML: channels not asked for, none for the span, channels without response.
    An unreadable file raises ``ValueError``."""
    from obspy import read_inventory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inv = read_inventory(str(path), format="STATIONXML")
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"partial or unreadable response ({type(exc).__name__})") from None
    if not inv.networks:
        raise ValueError("partial or unreadable response (no networks)")
    wrong, no_response, found = set(), set(), False
    for net in inv:
        for sta in net:
            if not sta.channels and not req.matches(net.code, sta.code, req.location, req.channel):
                wrong.add(f"{net.code}.{sta.code}")
            for cha in sta:
                codes = (net.code, sta.code, cha.location_code or "", cha.code)
                if not req.matches(*codes):
                    wrong.add(".".join(codes))
                    continue
                start = cha.start_date.timestamp if cha.start_date else -math.inf
                end = cha.end_date.timestamp if cha.end_date else math.inf
                if start <= want[1] and end >= want[0]:
                    found = True
                    if cha.response is None:
                        no_response.add(".".join(codes))
    lines = [f"StationXML of {', '.join(sorted(wrong))}, not {req.sid} as asked"] if wrong else []
    if not found:
        lines.append(f"StationXML has no channel of {req.sid} for {_span_text(want)}")
    if no_response:
        lines.append(f"StationXML without instrument response for {', '.join(sorted(no_response))}")
    return lines


# --- cache files ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _parts(out: Path, name: str) -> Iterator[Callable[[], Path]]:
    """Temporary files ``.NAME.*.part`` in the cache folder for the bodies of one file; all removed on leaving."""
    made: list[Path] = []

    def new() -> Path:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out)
        os.close(fd)
        made.append(Path(tmp))
        return made[-1]

    try:
        yield new
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()


def _merge(sources: list[Path], target: Path, sid: str | None = None) -> None:
    """Write the records of ``sources`` (only those of stream ``sid`` when given) into ``target`` atomically,
    byte-identical repeats (the edges of adjacent requests) kept once."""
    seen: set[bytes] = set()
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for src in sources:
            records = _records(src)
            with src.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                if not records:
                    _copy_stream(f, out, sid)
                    continue
                for offset, n, rid, _, _ in records:
                    if sid is not None and rid != sid:
                        continue
                    record = data[offset:offset + n]
                    key = hashlib.blake2b(record, digest_size=16).digest()
                    if key not in seen:
                        seen.add(key)
                        out.write(record)


def _copy_stream(f: BinaryIO, out: BinaryIO, sid: str | None) -> None:
    """Records without blockette 1000 (their lengths cannot be told): copied whole, or re-written per stream."""
    f.seek(0)
    if sid is None:
        shutil.copyfileobj(f, out)
        return
    from obspy import read

    st = read(io.BytesIO(f.read()), format="MSEED").select(id=sid)
    if len(st):
        st.write(out, format="MSEED")


def _stream_ids(sources: list[Path]) -> list[str]:
    """Stream ids of the records in checked miniSEED files."""
    return sorted({".".join(codes) for src in sources for codes, _, _ in _check_mseed(src)})


def _write_sds(run: _Run, sources: list[Path], day: float, replace: bool = False) -> list[str]:
    """Add the records of ``sources`` to the SDS day files of their channels (one file per stream id); return the
    files' paths relative to the archive. A file the manifest knows keeps its records (other requests may have
    written them); one it does not know is never changed, unless ``replace`` (``--overwrite``) replaces it."""
    rels = []
    for sid in _stream_ids(sources):
        rel = sds_path(*sid.split("."), day)
        path = run.out / rel
        known = run.manifest.sds_ok(rel, run.out)
        if path.exists() and not known and not replace:
            raise OutputExistsError("exists but does not match this folder's fetch manifest (not fetched here, or "
                                    "changed since); pass --overwrite to replace it", path)
        _merge(([path] if known else []) + sources, path, sid)
        run.manifest.record_sds(rel, sid, path.stat().st_size, run.url)
        rels.append(rel)
    return rels


def _remove_stale_parts(out: Path, names: list[str], age: float = 3600.0) -> None:
    """Temporary files of these outputs left by a killed run (older than ``age`` s, so a concurrent run's stay)."""
    now = time.time()
    for name in names:
        for part in out.glob(f".{glob.escape(name)}.*.part"):
            with contextlib.suppress(OSError):
                if now - part.stat().st_mtime > age:
                    part.unlink()


# --- the run ----------------------------------------------------------------------------------------------------------


@dataclass
class _Planned:
    kind: str  # "station" or "day"
    name: str
    span: Span
    covered: list[Span]
    empty: list[Span]
    missing: list[Span]


@dataclass
class _Run:
    """What the per-file steps share."""

    out: Path
    url: str
    req: _Request
    limits: Limits
    manifest: Manifest
    report: FetchReport
    token: CancelToken
    received: set[str] = field(default_factory=set)  # stream ids of the waveform data cached by this run
    overwrite: bool = False
    _service: _Service | None = None

    @property
    def service(self) -> _Service:
        if self._service is None:
            self._service = _Service(self.url, self.limits, self.token)
        return self._service


def fetch(network: str, station: str, location: str, channel: str, start: str | UTCDateTime,
          end: str | UTCDateTime, out_dir: str | Path, provider: str = "IRIS", response: bool = True,
          overwrite: bool = False, recheck_empty: bool = False, timeout: float = 60.0,
          progress: Progress = no_progress, token: CancelToken = NO_CANCEL, deadline: float = 600.0,
          max_bytes: int = 256_000_000, retries: int = 3, retry_delay: float = 2.0) -> FetchReport:
    """Download miniSEED day files (and StationXML) for one request into ``out_dir``; return what happened.

    Spans already in the folder's manifest are not requested again (``overwrite`` ignores the cache and replaces the
    files; ``recheck_empty`` asks again for spans that had no data). Each request may take ``deadline`` seconds in
    all (``timeout`` without any byte) and return at most ``max_bytes``; transient failures are tried ``retries``
    more times, ``retry_delay`` s apart (doubled each time). Raises :class:`FetchError` when the data centre cannot
    be reached or has no data at all for the request; other failures are listed in the report.
    """
    network, station = _code(network, "network"), _code(station, "station")
    location = "" if location.strip() in ("", "--") else _code(location, "location")
    channel = _code(channel, "channel")
    t_start, t_end = _time(start, "start"), _time(end, "end")
    if t_end <= t_start:
        raise ConfigError(f"end {t_end} is not after start {t_start}")
    limits = Limits(timeout, deadline, max_bytes, retries, retry_delay)
    limits.check()
    url = _provider_url(resolve_provider(provider))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("output is not a folder", out)

    manifest = Manifest(out, fresh_if_unreadable=overwrite)
    run = _Run(out, url, _Request(network, station, location, channel), limits, manifest, FetchReport(out), token,
               overwrite=overwrite)
    migrate_old_layout(run)
    plan = _plan(run, t_start, t_end, overwrite, recheck_empty, response)
    _remove_stale_parts(out, [item.name for item in plan] + [MANIFEST])
    asked_data = _download(run, plan, progress)
    report = run.report
    if any(item.kind == "day" for item in plan) and not report.waveform_files() and not report.failures:
        again = "" if asked_data else " (known from an earlier request; --recheck-empty asks again)"
        raise FetchError(f"{url}: no data for {run.req.sid} between {t_start} and {t_end}{again}")
    progress(1.0, report.summary())
    return report


def _plan(run: _Run, t_start: UTCDateTime, t_end: UTCDateTime, overwrite: bool, recheck_empty: bool,
          response: bool) -> list[_Planned]:
    """Per file of the request: what was received before and what is still missing."""
    req, out, manifest = run.req, run.out, run.manifest
    codes = (req.network, req.station, req.location, req.channel)
    want: Span = (float(t_start.timestamp), float(t_end.timestamp))

    def previous(name: str) -> list[Span]:
        have = [] if overwrite else manifest.covered(name, out)
        if have and not manifest.checked(name):
            have = _recheck(run, name, have)
        if not have and not overwrite and (out / name).exists():
            raise OutputExistsError("exists but does not match this folder's fetch manifest (not fetched here, or "
                                    "changed since); pass --overwrite to replace it", out / name)
        return have

    plan: list[_Planned] = []
    if response:
        name = station_file_name(*codes)
        have = previous(name)
        plan.append(_Planned("station", name, want, have, [], _missing(want, have)))
    for day, span in day_spans(t_start, t_end):
        name = day_file_name(*codes, day)
        have = previous(name)
        empty = [] if overwrite else manifest.empty(name)
        plan.append(_Planned("day", name, span, have, empty, _missing(span, have + ([] if recheck_empty else empty))))
    manifest.save()
    return plan


_OLD_DAY = re.compile(r"^(.+)\.(\d{4}-\d{2}-\d{2})\.mseed$")


def migrate_old_layout(run: _Run) -> list[str]:
    """Move the day files of the earlier naming (``NET.STA.LOC.CHA.YYYY-MM-DD.mseed`` in the folder itself) into the
    SDS layout, once: their records are split per channel, the manifest entry lists the SDS files, the old file is
    removed. Files cached before downloads were checked are checked first (against their entry's stream id); a
    wrong one is removed. Returns the names migrated."""
    done = []
    for name, entry in list(run.manifest.data["files"].items()):
        match = _OLD_DAY.match(name)
        if not match or not isinstance(entry, dict) or "sds" in entry or not run.manifest.covered(name, run.out):
            continue
        req = _request_of(str(entry.get("id", "")))
        if req is None:
            continue
        if not run.manifest.checked(name) and not _recheck(_with_request(run, req), name,
                                                           run.manifest.covered(name, run.out)):
            continue
        path = run.out / name
        rels = _write_sds(run, [path], UTCDateTime(match.group(2)).timestamp)
        run.manifest.data["files"][name] = run.manifest.entry(name) | {"sds": rels, "size": None}
        run.manifest.touched.add(name)
        run.manifest.save()
        path.unlink()
        done.append(name)
    return done


def _request_of(sid: str) -> _Request | None:
    parts = sid.split(".")
    return _Request(*parts) if len(parts) == 4 else None


def _with_request(run: _Run, req: _Request) -> _Run:
    """The same run for another request (the migration checks old files against their own request)."""
    from dataclasses import replace

    return replace(run, req=req)


def _recheck(run: _Run, name: str, have: list[Span]) -> list[Span]:
    """A file cached before downloads were checked: check it now; a wrong one is removed (and fetched again)."""
    path = run.out / name
    span = (min(a for a, _ in have), max(b for _, b in have))
    try:
        if name.endswith(".xml"):
            problems = _check_stationxml(path, run.req, span)
        else:
            problems = _mismatches(_check_mseed(path), run.req, span, verb="is in the file")
    except ValueError as exc:
        problems = [str(exc)]
    if not problems:
        run.manifest.mark_checked(name)
        return have
    run.report.replaced.append(f"{name}: {problems[0]}")
    path.unlink()
    run.manifest.forget(name)
    return []


def _download(run: _Run, plan: list[_Planned], progress: Progress) -> bool:
    """Fetch the missing part of every planned file; return whether any waveform request was made."""
    report = run.report
    n_steps = max(len(plan), 1)
    stopped: str | None = None
    asked_data = False
    for i, item in enumerate(plan):
        run.token.check()
        path = run.out / item.name
        if not item.missing:
            progress((i + 1) / n_steps, f"{item.name}: already present")
            paths = run.manifest.sds_paths(item.name, run.out) if item.kind == "day" else [path]
            if item.covered and all(p.exists() for p in paths):
                report.cached.extend(paths)
                report.files.extend(paths)
            else:
                report.empty.append(f"{item.name} [{_span_text(item.span)}]")
            continue
        if stopped is not None:
            report.failures.append(f"{item.name} [{_span_text(item.span)}]: not attempted ({stopped})")
            continue
        progress(i / n_steps, f"{item.name}: downloading")
        if item.kind == "station":
            status = _fetch_station(run, item)
        else:
            asked_data = True
            status = _fetch_day(run, item)
        run.manifest.save()
        if status == "unreachable":
            if report.requests == 1 and not report.downloaded:  # the very first request: nothing to keep
                reason = report.failures.pop().split("]: ", 1)[-1]
                raise FetchError(f"{run.url}: cannot reach the data centre (no network, or the service is down): "
                                 f"{reason}")
            stopped = "the data centre stopped answering"
        progress((i + 1) / n_steps, f"{item.name}: done")
    _check_metadata_coverage(run, plan)
    return asked_data


def _check_metadata_coverage(run: _Run, plan: list[_Planned]) -> None:
    """The StationXML must describe every channel whose data this run cached; if not, it is removed and listed."""
    item = next((p for p in plan if p.kind == "station"), None)
    path = None if item is None else run.out / item.name
    if item is None or path is None or not run.received or not path.is_file():
        return
    from obspy import read_inventory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = read_inventory(str(path), format="STATIONXML")
    listed = {f"{n.code}.{s.code}.{c.location_code or ''}.{c.code}" for n in inv for s in n for c in s}
    lacking = sorted(run.received - listed)
    if not lacking:
        return
    span = _spans(run.manifest.entry(item.name).get("covered", [])) or [item.span]
    run.report.failures.append(f"{item.name} [{_span_text((span[0][0], span[-1][1]))}]: wrong metadata, removed: "
                               f"the StationXML has no channel {', '.join(lacking)}, whose data were received")
    path.unlink()
    run.manifest.forget(item.name)
    run.manifest.save()
    for group in (run.report.files, run.report.downloaded, run.report.cached):
        if path in group:
            group.remove(path)


def _fetch_station(run: _Run, item: _Planned) -> str:
    """StationXML of the whole span asked so far (small: replaced rather than merged)."""
    path = run.out / item.name
    span = (min([item.span[0]] + [a for a, _ in item.covered]), max([item.span[1]] + [b for _, b in item.covered]))
    label = f"{item.name} [{_span_text(span)}]"
    failures = run.report.failures
    if not run.service.offers("station"):
        failures.append(f"{label}: the data centre offers no FDSN station service")
        return "failed"
    run.report.requests += 1
    with _parts(run.out, item.name) as new_part:
        part = new_part()
        try:
            with part.open("r+b") as sink:
                status = run.service.get("station", run.req.params(span) | {"level": "response"}, sink)
        except RequestFailed as exc:
            failures.append(f"{label}: StationXML: {exc.text}")
            return exc.kind
        if status != 200:
            failures.append(f"{label}: StationXML: no metadata (HTTP {status})")
            return "failed"
        try:
            problems = _check_stationxml(part, run.req, span)
        except ValueError as exc:
            failures.append(f"{label}: StationXML: {exc}, nothing kept")
            return "failed"
        if problems:
            failures.extend(f"{label}: wrong metadata, nothing kept: {p}" for p in problems)
            return "failed"
        size = part.stat().st_size
        with atomic_path(path) as tmp:
            shutil.copyfile(part, tmp)
    run.report.bytes += size
    run.manifest.record(item.name, run.req.sid, [span], [], size, run.url)
    run.report.downloaded.append(path)
    run.report.files.append(path)
    return "ok"


def _fetch_span(run: _Run, item: _Planned, span: Span, part: Path) -> tuple[str, list[str]]:
    """One dataselect request into ``part``: (``ok``/``nodata``/``failed``/``unreachable``, failure lines)."""
    label = f"{item.name} [{_span_text(span)}]"
    run.report.requests += 1
    try:
        with part.open("r+b") as sink:
            status = run.service.get("dataselect", run.req.params(span), sink)
    except RequestFailed as exc:
        return exc.kind, [f"{label}: {exc.text}"]
    if status != 200:
        return "nodata", []
    try:
        records = _check_mseed(part)
    except ValueError as exc:
        return "failed", [f"{label}: partial response, nothing kept: {exc}"]
    problems = _mismatches(records, run.req, span)
    if not problems:
        run.received.update(".".join(codes) for codes, _, _ in records)
    return ("failed" if problems else "ok"), [f"{label}: wrong data, nothing kept: {p}" for p in problems]


def _fetch_day(run: _Run, item: _Planned) -> str:
    """Download the missing spans of one day and add their records to the channels' SDS day files atomically."""
    covered, empty = list(item.covered), list(item.empty)
    status = "ok"
    with _parts(run.out, item.name) as new_part:
        good: list[Path] = []
        for span in item.missing:
            part = new_part()
            kind, lines = _fetch_span(run, item, span, part)
            run.report.failures.extend(lines)
            if kind == "ok":
                good.append(part)
                covered.append(span)
            elif kind == "nodata":
                empty.append(span)
            else:
                status = kind
                if kind == "unreachable":
                    break
        sds = [str(p.relative_to(run.out)) for p in run.manifest.sds_paths(item.name, run.out)] if item.covered else []
        if good:
            new = _write_sds(run, good, item.span[0], replace=run.overwrite)
            sds = sorted(set(sds) | set(new))
            run.report.bytes += sum(p.stat().st_size for p in good)
            run.report.downloaded.extend(run.out / rel for rel in new)
    if covered and sds:
        run.manifest.record(item.name, run.req.sid, covered, empty, None, run.url, sds)
        run.report.files.extend(run.out / rel for rel in sds)
    elif empty:
        run.manifest.record(item.name, run.req.sid, [], empty, None, run.url)
        if not _missing(item.span, empty):
            run.report.empty.append(f"{item.name} [{_span_text(item.span)}]")
    return status
