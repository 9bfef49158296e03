"""A local FDSN web-service stand-in for tests: dataselect and station queries answered from the real InSight files.

It serves ``/fdsnws/{dataselect,station}/1/{query,application.wadl,version}`` on 127.0.0.1 (event: 404, as at a
data centre without an event service). Dataselect answers with the miniSEED *records* of ``raw/*.mseed`` that overlap
the requested window (byte for byte, as a data centre does); station answers with the StationXML of ``response/``
for the requested location (gzip-compressed when the client accepts it). Faults (HTTP codes, a connection cut
mid-body, a close-delimited truncated body, a delay, a body trickled byte by byte, a connection reset, a body
without length, a wrong answer: other query parameters or other codes in the records) can be injected per service
and UTC day; every request is logged so tests can count them.
"""

from __future__ import annotations

import gzip
import io
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from obspy import UTCDateTime
from obspy.io.mseed.util import get_record_information

from unmix.fdsn_loopback import LoopbackServer, match_codes

_WADL_TYPES = {"starttime": "xs:dateTime", "endtime": "xs:dateTime", "level": "xs:string", "minlatitude": "xs:double",
               "maxlatitude": "xs:double", "minlongitude": "xs:double", "maxlongitude": "xs:double",
               "format": "xs:string", "nodata": "xs:int", "quality": "xs:string", "minimumlength": "xs:double",
               "longestonly": "xs:boolean", "includerestricted": "xs:boolean", "matchtimeseries": "xs:boolean"}
_PARAMS = {
    "dataselect": ["starttime", "endtime", "network", "station", "location", "channel", "quality", "minimumlength",
                   "longestonly", "format", "nodata"],
    "station": ["starttime", "endtime", "network", "station", "location", "channel", "minlatitude", "maxlatitude",
                "minlongitude", "maxlongitude", "level", "includerestricted", "matchtimeseries", "format", "nodata"],
}


def _wadl(base: str, service: str) -> bytes:
    params = "\n".join(f'        <param name="{p}" style="query" type="{_WADL_TYPES.get(p, "xs:string")}"/>'
                       for p in _PARAMS[service])
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<application xmlns="http://wadl.dev.java.net/2009/02" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <resources base="{base}/fdsnws/{service}/1/">
    <resource path="query" id="query">
      <method name="GET">
        <request>
{params}
        </request>
        <response status="200"/>
      </method>
    </resource>
  </resources>
</application>
""".encode()


@dataclass
class _Record:
    net: str
    sta: str
    loc: str
    cha: str
    t0: float
    t1: float
    data: bytes


@dataclass
class Fault:
    """``action``: an HTTP code (204, 404, 429, 500, 503…; ``headers`` sent with it), ``"cut"`` (Content-Length
    sent, half the body, then the connection is closed), ``"truncate"`` (no Content-Length, half the body),
    ``"delay"`` (answer after ``seconds``), ``"trickle"`` (one byte of the body every ``seconds``), ``"reset"`` (the
    connection is reset before any answer), ``"nolength"`` (the whole body, no Content-Length) or ``"wrong"`` (the
    answer to the query with ``params`` replaced, miniSEED header fields replaced by ``codes``: ``station``,
    ``location``, ``channel``, ``network``). Applies to requests of ``service`` whose start time falls on ``day``
    (any day if empty), ``times`` times (0: always)."""

    service: str
    action: int | str
    day: str = ""
    times: int = 0
    seconds: float = 0.0
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    codes: dict[str, str] | None = None


def _index(paths: list[Path]) -> list[_Record]:
    records = []
    for path in paths:
        blob = path.read_bytes()
        offset = 0
        while offset < len(blob):
            info = get_record_information(io.BytesIO(blob), offset=offset)
            n = info["record_length"]
            records.append(_Record(info["network"], info["station"], info["location"], info["channel"],
                                   info["starttime"].timestamp, info["endtime"].timestamp, blob[offset:offset + n]))
            offset += n
    return records


_FIELDS = {"station": (8, 5), "location": (13, 2), "channel": (15, 3), "network": (18, 2)}


def _recode(data: bytes, codes: dict[str, str]) -> bytes:
    """The records of ``data`` (512 bytes each here) with fixed-header code fields replaced."""
    out = bytearray(data)
    for offset in range(0, len(out), 512):
        for name, value in codes.items():
            start, width = _FIELDS[name]
            out[offset + start:offset + start + width] = value.ljust(width).encode("ascii")
    return bytes(out)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (timeout tests) is not an error of the stand-in."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FdsnStandIn(LoopbackServer):
    """Threaded HTTP server; use as a context manager. ``url`` is its base URL; ``log`` lists (service, params)."""

    def __init__(self, insight: Path, mseed: list[Path] | None = None, port: int = 0) -> None:
        files = mseed if mseed is not None else sorted((insight / "raw").glob("XB.ELYSE.0[23].BH_*raw.mseed"))
        self.records = _index(files)
        self.stationxml = {"02": insight / "response" / "XB.ELYSE.02.BH.xml",
                           "03": insight / "response" / "XB.ELYSE.03.BH_2019-05-18_2019-06-01.xml"}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler(), port, _Server)

    def add_fault(self, service: str, action: int | str, day: str = "", times: int = 0, seconds: float = 0.0,
                  **more) -> None:
        with self._lock:
            self.faults.append(Fault(service, action, day, times, seconds, **more))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def queries(self, service: str | None = None) -> list[dict[str, str]]:
        """Parameters of the ``query`` requests made so far (of one service, or all)."""
        with self._lock:
            return [p for s, p in self.log if s == service or (service is None and s in ("dataselect", "station"))]

    def _fault(self, service: str, params: dict[str, str]) -> Fault | None:
        day = params.get("starttime", "")[:10]
        with self._lock:
            for f in self.faults:
                if f.service == service and (not f.day or f.day == day):
                    if f.times:
                        f.times -= 1
                        if f.times == 0:
                            self.faults.remove(f)
                    return f
        return None

    def dataselect(self, params: dict[str, str]) -> bytes:
        t0, t1 = UTCDateTime(params["starttime"]).timestamp, UTCDateTime(params["endtime"]).timestamp
        return b"".join(r.data for r in self.records
                        if r.t0 <= t1 and r.t1 >= t0
                        and all(match_codes(code, params.get(key, "")) for code, key in
                                zip((r.net, r.sta, r.loc, r.cha), ("network", "station", "location", "channel"),
                                    strict=True)))

    def station(self, params: dict[str, str]) -> bytes:
        for loc, path in self.stationxml.items():
            if match_codes(loc, params.get("location", "")) and match_codes("ELYSE", params.get("station", "")):
                return path.read_bytes()
        return b""

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, ctype: str = "text/plain", encoding: str = "",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "fdsnws" or parts[1] not in ("dataselect", "station"):
                    self._send(404, b"Error 404: not found\n")
                    return
                service, resource = parts[1], parts[3]
                params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                with standin._lock:
                    standin.log.append((service if resource == "query" else f"{service}/{resource}", params))
                if resource == "application.wadl":
                    self._send(200, _wadl(standin.url, service), "application/xml")
                    return
                if resource == "version":
                    self._send(200, b"1.1.0")
                    return
                if resource != "query":
                    self._send(404, b"Error 404: not found\n")
                    return
                fault = standin._fault(service, params)
                if fault is not None and fault.action == "delay":
                    time.sleep(fault.seconds)
                    fault = None
                if fault is not None and isinstance(fault.action, int):
                    body = b"" if fault.action == 204 else f"Error {fault.action}: injected by the stand-in\n".encode()
                    self._send(fault.action, body, headers=fault.headers)
                    return
                if fault is not None and fault.action == "reset":  # RST instead of an answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault is not None and fault.action == "wrong":
                    params = params | (fault.params or {})
                body = standin.dataselect(params) if service == "dataselect" else standin.station(params)
                if fault is not None and fault.action == "wrong" and fault.codes and service == "dataselect":
                    body = _recode(body, fault.codes)
                if not body:
                    self._send(204, b"")
                    return
                ctype = "application/vnd.fdsn.mseed" if service == "dataselect" else "application/xml"
                zipped = service == "station" and "gzip" in self.headers.get("Accept-Encoding", "")
                if zipped:  # as data centres do for StationXML when the client accepts it (ObsPy does)
                    body = gzip.compress(body)
                if fault is not None and fault.action == "cut":
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    if zipped:
                        self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault is not None and fault.action in ("trickle", "nolength"):
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    if zipped:
                        self.send_header("Content-Encoding", "gzip")
                    self.end_headers()
                    step = 1 if fault.action == "trickle" else len(body)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(fault.seconds)
                    self.close_connection = True
                    return
                if fault is not None and fault.action == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2 + 100])
                    self.close_connection = True
                    return
                self._send(200, body, ctype, "gzip" if zipped else "")

        return Handler
