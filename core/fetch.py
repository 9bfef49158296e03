"""FDSN download into a local cache: miniSEED day files and StationXML, with a manifest so nothing is fetched twice.

``fetch`` asks a data centre (IRIS/EarthScope, IPGP or any FDSN web-service URL) through ObsPy's FDSN client for one
request (network, station, location, channel, time span) and writes, under the output folder:

- ``NET.STA.LOC.CHA.YYYY-MM-DD.mseed``: the miniSEED records of each UTC day, exactly as the data centre sent them
  (a record crossing midnight is in both day files; readers merge such overlaps). Wildcards in the channel become
  file-name-safe: ``?`` → ``_``, ``*`` → ``~``, ``,`` → ``+`` (``BH?`` gives ``XB.ELYSE.02.BH_.2019-07-26.mseed``).
- ``NET.STA.LOC.CHA.xml``: StationXML with the full response, covering the span asked for so far.
- ``fetch-manifest.json``: which spans of each file were received (or known to be empty), the provider, the size.

A later request downloads only the spans the manifest does not cover and whose files are still on disk with the
recorded size, so a second identical run makes no request at all and an interrupted run resumes where it stopped.
What a request returns is checked (miniSEED record by record, StationXML parsed) before it is written, and every
file is written atomically (temporary name, then rename), so a cut connection never leaves a half-written day file.
Failures of single requests (HTTP errors, cut connections) are collected in the report while the other days go on;
an unreachable service stops the run.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import io
import json
import math
import re
import socket
import struct
import time
import urllib.error
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obspy import UTCDateTime

from core import __version__
from core.atomic import atomic_path
from core.errors import ConfigError, InputFileError, OutputExistsError, UnmixError
from core.jobs import CancelToken, Progress, no_progress

PROVIDERS = {"IRIS": "EARTHSCOPE", "EARTHSCOPE": "EARTHSCOPE", "IPGP": "IPGP"}
MANIFEST = "fetch-manifest.json"
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
    requests: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def waveform_files(self) -> list[Path]:
        return [p for p in self.files if p.suffix == ".mseed"]

    def summary(self) -> str:
        """One line for the CLI and the GUI."""
        n_new = len(self.downloaded)
        if self.requests == 0 and not self.failures:
            head = "nothing to download, all present"
        else:
            head = f"{n_new} file(s) written, {_size(self.bytes)} in {self.requests} request(s)"
        parts = [head, f"{len(self.cached)} already present"]
        if self.empty:
            parts.append(f"{len(self.empty)} span(s) without data")
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


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


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
        """Spans of ``name`` received earlier, if the file is still on disk with the size recorded."""
        e = self.entry(name)
        path = out_dir / name
        if not e.get("covered") or not path.is_file() or path.stat().st_size != e.get("size"):
            return []
        return _spans(e["covered"])

    def empty(self, name: str) -> list[Span]:
        return _spans(self.entry(name).get("empty", []))

    def record(self, name: str, stream: str, covered: list[Span], empty: list[Span], size: int | None,
               source: str) -> None:
        self.touched.add(name)
        self.data["files"][name] = {
            "id": stream, "covered": [[_iso(a), _iso(b)] for a, b in _union(covered)],
            "empty": [[_iso(a), _iso(b)] for a, b in _union(empty)], "size": size, "source": source,
            "updated": str(UTCDateTime()),
        }

    def save(self) -> None:
        if not self.touched:
            return
        try:
            current = self._read()
        except InputFileError:
            current = {"version": 1, "files": {}}
        current["files"].update({name: self.data["files"][name] for name in self.touched})
        self.data = current
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(current, indent=1, sort_keys=True), encoding="utf-8")


def _spans(value: Any) -> list[Span]:
    """Spans from the manifest's ``[[iso, iso], …]``; a malformed list counts as nothing known."""
    try:
        return [(UTCDateTime(a).timestamp, UTCDateTime(b).timestamp) for a, b in value]
    except Exception:  # noqa: BLE001
        return []


# --- errors -----------------------------------------------------------------------------------------------------------


class _Unreachable(Exception):
    """The service cannot be reached at all (stop the run)."""


def _http_code(exc: Exception) -> int | None:
    code = getattr(exc, "status_code", None)
    if code:
        return int(code)
    m = re.search(r"HTTP code: (\d{3})|HTTP Status code: (\d{3})", str(exc))
    return int(m.group(1) or m.group(2)) if m else None


def _server_says(exc: Exception) -> str:
    text = str(exc)
    if "Detailed response of server:" in text:
        lines = [s.strip() for s in text.split("Detailed response of server:", 1)[1].splitlines() if s.strip()]
        if lines:  # urllib puts the reason phrase first, then the body (FDSN: "Error 500: ...")
            return f" (server says: {(lines[1] if len(lines) > 1 else lines[0])[:160]})"
    return ""


def _classify(exc: Exception, timeout: float) -> tuple[str, str]:
    """(kind, text) of a failed request: kind is ``nodata``, ``unreachable`` or ``failed``."""
    from obspy.clients.fdsn.header import FDSNException, FDSNNoDataException, FDSNTimeoutException

    if isinstance(exc, FDSNNoDataException):
        return "nodata", "no data (HTTP 204)"
    if isinstance(exc, (FDSNTimeoutException, TimeoutError, socket.timeout)):
        return "unreachable", f"no answer within {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        got, left = len(exc.partial), exc.expected
        total = f" of {got + left}" if left is not None else ""
        return "failed", f"connection cut mid-download ({got}{total} bytes received, nothing kept)"
    if isinstance(exc, (http.client.HTTPException, ConnectionError)):
        return "failed", f"connection cut mid-download ({type(exc).__name__}, nothing kept)"
    if isinstance(exc, FDSNException):
        code = _http_code(exc)
        if code == 404:
            return "nodata", "no data (HTTP 404)"
        if code is not None:
            first = str(exc).splitlines()[0].replace("Service responds: ", "").strip()
            return "failed", f"HTTP {code}: {first}{_server_says(exc)}"
        text = str(exc).splitlines()[0]
        if "(URLError)" in text:  # urllib could not connect: refused, DNS, network down
            return "unreachable", f"cannot connect ({text.split(':', 1)[-1].strip()})"
        if "Unknown Error" in text:  # e.g. the server closed the connection before answering
            return "failed", f"connection lost ({text.split('(', 1)[-1].rstrip(')')})"
        return "failed", text
    if isinstance(exc, (urllib.error.URLError, OSError)):
        return "unreachable", f"cannot connect ({exc})"
    raise exc


def _connect_problem(url: str, timeout: float) -> str:
    """Why a TCP connection to the URL's host fails ('' when it connects)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=min(timeout, 10.0)):
            return ""
    except socket.gaierror:
        return f"host name {parts.hostname!r} not resolved"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _make_client(base: str, timeout: float):
    from obspy.clients.fdsn import Client
    from obspy.clients.fdsn.header import FDSNException

    url = _provider_url(base)
    try:
        client = Client(base, timeout=timeout, user_agent=f"unmix/{__version__} (ObsPy FDSN client)")
    except ValueError as exc:
        raise ConfigError(f"provider {base!r}: {exc}") from None
    except FDSNException as exc:
        text = str(exc).splitlines()[0]
        if "No FDSN services" in text:  # ObsPy says so for an unreachable host as well: tell the two apart
            problem = _connect_problem(url, timeout)
            if problem:
                raise FetchError(f"{url}: cannot reach the data centre (no network, or the service is down): "
                                 f"{problem}") from None
            raise FetchError(f"{url}: no FDSN web service answers there (check the URL)") from None
        raise FetchError(f"{url}: cannot reach the data centre (no network, or the service is down): {text}") from None
    except OSError as exc:
        raise FetchError(f"{url}: cannot reach the data centre (no network, or the service is down): {exc}") from None
    if "dataselect" not in client.services:
        raise FetchError(f"{url}: the data centre offers no FDSN dataselect (waveform) service")
    return client


# --- downloads --------------------------------------------------------------------------------------------------------


def _record_lengths(data: bytes) -> list[int] | None:
    """Lengths of the miniSEED 2 records in ``data`` (from blockette 1000); None when they cannot be told.

    Raises ``ValueError`` when the bytes end inside a record: ObsPy's reader skips such a last record silently.
    """
    lengths, offset = [], 0
    while offset < len(data):
        head = data[offset:offset + 48]
        if len(head) < 48 or head[6:7] not in (b"D", b"R", b"Q", b"M"):
            if offset == 0:
                return None
            raise ValueError(f"incomplete miniSEED: {len(data) - offset} byte(s) after the last whole record")
        order = ">" if 1900 <= struct.unpack(">H", head[20:22])[0] <= 2100 else "<"
        n_blockettes = head[39]
        position = struct.unpack(order + "H", head[46:48])[0]
        length = None
        for _ in range(n_blockettes):
            if position < 48 or position + 7 > len(data) - offset:
                break
            kind, following = struct.unpack(order + "HH", data[offset + position:offset + position + 4])
            if kind == 1000:
                length = 1 << data[offset + position + 6]
                break
            position = following
        if length is None or length < 128:
            return None
        if offset + length > len(data):
            raise ValueError(f"incomplete miniSEED: the last record has {len(data) - offset} of {length} bytes")
        lengths.append(length)
        offset += length
    return lengths


def _check_mseed(data: bytes) -> None:
    """Check what was received record by record and parse it; truncated or unreadable data raise ``ValueError``."""
    from obspy import read

    if not data:
        raise ValueError("empty response")
    _record_lengths(data)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            st = read(io.BytesIO(data), format="MSEED", headonly=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"not readable miniSEED ({type(exc).__name__})") from None
    words = ("end of file", "truncat", "not enough", "corrupt")
    bad = [str(w.message) for w in seen if any(k in str(w.message).lower() for k in words)]
    if bad:
        raise ValueError(f"incomplete miniSEED: {bad[0][:160]}")
    if len(st) == 0:
        raise ValueError("no traces in the miniSEED")


def _dedupe_records(data: bytes) -> bytes:
    """Drop byte-identical repeated records (the edges of adjacent requests)."""
    lengths = _record_lengths(data)
    if not lengths:
        return data
    seen: set[bytes] = set()
    out = bytearray()
    offset = 0
    for n in lengths:
        rec = data[offset:offset + n]
        offset += n
        if rec not in seen:
            seen.add(rec)
            out += rec
    return bytes(out)


def _get_bytes(fn, **kwargs) -> bytes:
    buf = io.BytesIO()
    fn(filename=buf, **kwargs)
    return buf.getvalue()


def fetch(network: str, station: str, location: str, channel: str, start: str | UTCDateTime,
          end: str | UTCDateTime, out_dir: str | Path, provider: str = "IRIS", response: bool = True,
          overwrite: bool = False, recheck_empty: bool = False, timeout: float = 60.0,
          progress: Progress | None = None, token: CancelToken | None = None) -> FetchReport:
    """Download miniSEED day files (and StationXML) for one request into ``out_dir``; return what happened.

    Spans already in the folder's manifest are not requested again (``overwrite`` ignores the cache and replaces the
    files; ``recheck_empty`` asks again for spans that had no data). Raises :class:`FetchError` when the data centre
    cannot be reached or has no data at all for the request; other failures are listed in the report.
    """
    progress = progress or no_progress
    network, station = _code(network, "network"), _code(station, "station")
    location = "" if location.strip() in ("", "--") else _code(location, "location")
    channel = _code(channel, "channel")
    t_start, t_end = _time(start, "start"), _time(end, "end")
    if t_end <= t_start:
        raise ConfigError(f"end {t_end} is not after start {t_start}")
    if timeout <= 0:
        raise ConfigError("timeout must be positive")
    base = resolve_provider(provider)
    url = _provider_url(base)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("output is not a folder", out)

    manifest = Manifest(out, fresh_if_unreadable=overwrite)
    report = FetchReport(out)
    sid = stream_id(network, station, location, channel)
    days = list(day_spans(t_start, t_end))
    want: Span = (float(t_start.timestamp), float(t_end.timestamp))

    def previous(name: str) -> list[Span]:
        have = [] if overwrite else manifest.covered(name, out)
        if not have and not overwrite and (out / name).exists():
            raise OutputExistsError("exists but does not match this folder's fetch manifest (not fetched here, or "
                                    "changed since); pass --overwrite to replace it", out / name)
        return have

    # plan: per file, what was received before and what is still missing
    plan: list[_Planned] = []
    if response:
        name = station_file_name(network, station, location, channel)
        have = previous(name)
        plan.append(_Planned("station", name, want, have, [], _missing(want, have)))
    for _day, span in days:
        name = day_file_name(network, station, location, channel, _day)
        have = previous(name)
        empty = [] if overwrite else manifest.empty(name)
        plan.append(_Planned("day", name, span, have, empty, _missing(span, have + ([] if recheck_empty else empty))))

    _remove_stale_parts(out, [item.name for item in plan] + [MANIFEST])
    client = None
    codes = (network, station, location or "--", channel)
    n_steps = max(len(plan), 1)
    stopped: str | None = None
    asked_data = False
    for i, item in enumerate(plan):
        if token is not None:
            token.check()
        path = out / item.name
        if not item.missing:
            progress((i + 1) / n_steps, f"{item.name}: already present")
            if path.exists():
                report.cached.append(path)
                report.files.append(path)
            else:
                report.empty.append(f"{item.name} [{_span_text(item.span)}]")
            continue
        if stopped is not None:
            report.failures.append(f"{item.name} [{_span_text(item.span)}]: not attempted ({stopped})")
            continue
        progress(i / n_steps, f"{item.name}: downloading")
        if client is None:
            client = _make_client(base, timeout)
        if item.kind == "station":
            status = _fetch_station(client, manifest, report, out, item, sid, codes, url, timeout)
        else:
            asked_data = True
            status = _fetch_day(client, manifest, report, out, item, sid, codes, url, timeout)
        manifest.save()
        if status == "unreachable":
            if report.requests == 1 and not report.downloaded:  # the very first request: nothing to keep
                reason = report.failures.pop().split("]: ", 1)[-1]
                raise FetchError(f"{url}: cannot reach the data centre (no network, or the service is down): "
                                 f"{reason}")
            stopped = "the data centre stopped answering"
        progress((i + 1) / n_steps, f"{item.name}: done")

    if days and not report.waveform_files() and not report.failures:
        again = "" if asked_data else " (known from an earlier request; --recheck-empty asks again)"
        raise FetchError(f"{url}: no data for {sid} between {t_start} and {t_end}{again}")
    progress(1.0, report.summary())
    return report


def _remove_stale_parts(out: Path, names: list[str], age: float = 3600.0) -> None:
    """Temporary files of these outputs left by a killed run (older than ``age`` s, so a concurrent run's stay)."""
    now = time.time()
    for name in names:
        for part in out.glob(f".{glob.escape(name)}.*.part"):
            with contextlib.suppress(OSError):
                if now - part.stat().st_mtime > age:
                    part.unlink()


@dataclass
class _Planned:
    kind: str  # "station" or "day"
    name: str
    span: Span
    covered: list[Span]
    empty: list[Span]
    missing: list[Span]


def _fetch_station(client, manifest: Manifest, report: FetchReport, out: Path, item: _Planned, sid: str,
                   codes: tuple[str, str, str, str], url: str, timeout: float) -> str:
    """StationXML of the whole span asked so far (small: replaced rather than merged)."""
    from obspy import read_inventory

    path = out / item.name
    span = (min([item.span[0]] + [a for a, _ in item.covered]), max([item.span[1]] + [b for _, b in item.covered]))
    label = f"{item.name} [{_span_text(span)}]"
    if "station" not in client.services:
        report.failures.append(f"{label}: the data centre offers no FDSN station service")
        return "failed"
    net, sta, loc, cha = codes
    report.requests += 1
    try:
        data = _get_bytes(client.get_stations, network=net, station=sta, location=loc, channel=cha,
                          starttime=UTCDateTime(span[0]), endtime=UTCDateTime(span[1]), level="response")
    except Exception as exc:  # noqa: BLE001  (classified; programming errors are re-raised)
        kind, text = _classify(exc, timeout)
        report.failures.append(f"{label}: StationXML: {'no metadata' if kind == 'nodata' else text}")
        return kind
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inv = read_inventory(io.BytesIO(data), format="STATIONXML")
        if not inv.networks:
            raise ValueError("no networks")
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"{label}: StationXML: partial or unreadable response, nothing kept "
                               f"({type(exc).__name__})")
        return "failed"
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    report.bytes += len(data)
    manifest.record(item.name, sid, [span], [], len(data), url)
    report.downloaded.append(path)
    report.files.append(path)
    return "ok"


def _fetch_day(client, manifest: Manifest, report: FetchReport, out: Path, item: _Planned, sid: str,
               codes: tuple[str, str, str, str], url: str, timeout: float) -> str:
    """Download the missing spans of one day and rewrite its file (old records + new ones) atomically."""
    path = out / item.name
    covered, empty = list(item.covered), list(item.empty)
    chunks: list[bytes] = []
    status = "ok"
    net, sta, loc, cha = codes
    for span in item.missing:
        report.requests += 1
        try:
            data = _get_bytes(client.get_waveforms, network=net, station=sta, location=loc, channel=cha,
                              starttime=UTCDateTime(span[0]), endtime=UTCDateTime(span[1]))
            _check_mseed(data)
        except ValueError as exc:
            report.failures.append(f"{item.name} [{_span_text(span)}]: partial response, nothing kept: {exc}")
            status = "failed"
            continue
        except Exception as exc:  # noqa: BLE001  (classified; programming errors are re-raised)
            kind, text = _classify(exc, timeout)
            if kind == "nodata":
                empty.append(span)
                continue
            report.failures.append(f"{item.name} [{_span_text(span)}]: {text}")
            status = kind
            if kind == "unreachable":
                break
            continue
        chunks.append(data)
        covered.append(span)
    if chunks:
        old = path.read_bytes() if item.covered else b""
        data = _dedupe_records(old + b"".join(chunks))
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        report.bytes += sum(len(c) for c in chunks)
        report.downloaded.append(path)
    if covered and path.exists():
        manifest.record(item.name, sid, covered, empty, path.stat().st_size, url)
        report.files.append(path)
    elif empty:
        manifest.record(item.name, sid, [], empty, None, url)
        if not _missing(item.span, empty):
            report.empty.append(f"{item.name} [{_span_text(item.span)}]")
    return status
