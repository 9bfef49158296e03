"""A minimal FDSN web service on 127.0.0.1 for ``unmix --self-test``: the fetch path checked without a network.

It answers ``/fdsnws/{dataselect,station}/1/{query,application.wadl,version}`` (anything else: 404) from miniSEED
files given to it: dataselect returns the files' *records* that overlap the request and match its codes (as a data
centre does); station returns a small StationXML of the channels in the files, with a generic response. Use it
as a context manager.
"""

from __future__ import annotations

import fnmatch
import io
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

_WADL = """<?xml version="1.0" encoding="UTF-8"?>
<application xmlns="http://wadl.dev.java.net/2009/02" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <resources base="{base}/fdsnws/{service}/1/">
    <resource path="query" id="query">
      <method name="GET"><request>
{params}
      </request><response status="200"/></method>
    </resource>
  </resources>
</application>
"""
_PARAMS = {"dataselect": ["starttime", "endtime", "network", "station", "location", "channel", "quality",
                          "minimumlength", "longestonly", "format", "nodata"],
           "station": ["starttime", "endtime", "network", "station", "location", "channel", "level", "format",
                       "nodata", "includerestricted", "matchtimeseries"]}


@dataclass(frozen=True)
class _Record:
    codes: tuple[str, str, str, str]
    t0: float
    t1: float
    data: bytes


def _records(paths: list[Path]) -> list[_Record]:
    """Every miniSEED record of ``paths`` with its codes and time span."""
    from obspy.io.mseed.util import get_record_information

    out = []
    for path in paths:
        blob = Path(path).read_bytes()
        offset = 0
        while offset < len(blob):
            info = get_record_information(io.BytesIO(blob), offset=offset)
            n = info["record_length"]
            codes = (info["network"], info["station"], info["location"], info["channel"])
            out.append(_Record(codes, info["starttime"].timestamp, info["endtime"].timestamp, blob[offset:offset + n]))
            offset += n
    return out


def match_codes(value: str, patterns: str) -> bool:
    """Whether a SEED code matches an FDSN pattern list (``?``, ``*``, commas; ``--`` is the empty location)."""
    options = [p.strip() for p in patterns.split(",")] if patterns else ["*"]
    return any(fnmatch.fnmatchcase(value, "" if p == "--" else p) for p in options)


def _stationxml(records: list[_Record]) -> bytes:
    """StationXML (station level, with channels) of the channels present in ``records``."""
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Inventory, Network, Response, Station

    start = UTCDateTime(min(r.t0 for r in records))
    # a broadband seismometer in counts (two zeros at 0, a 120-s pole pair): the fetch keeps no StationXML without one
    response = Response.from_paz([0j, 0j], [-0.037 + 0.037j, -0.037 - 0.037j], 1.0e10, input_units="M/S",
                                 output_units="COUNTS")
    nets: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for net, sta, loc, cha in sorted({r.codes for r in records}):
        nets.setdefault(net, {}).setdefault(sta, []).append((loc, cha))
    inv = Inventory(source="unmix self-test", networks=[
        Network(net, stations=[
            Station(sta, 4.502, 135.623, -2613.4, start_date=start, channels=[
                Channel(cha, loc, 4.502, 135.623, -2613.4, 0.0, start_date=start, response=response)
                for loc, cha in chans])
            for sta, chans in stations.items()])
        for net, stations in nets.items()])
    buf = io.BytesIO()
    inv.write(buf, format="STATIONXML")
    return buf.getvalue()


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 run in a daemon thread; use as a context manager. ``url`` is its base."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0,
                 server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> None:
        self.server = server_class(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FdsnLoopback(LoopbackServer):
    """FDSN dataselect/station queries answered from ``mseed`` files."""

    def __init__(self, mseed: list[Path]) -> None:
        self.records = _records(mseed)
        self.requests: list[str] = []
        super().__init__(self._handler())

    def answer(self, service: str, resource: str, params: dict[str, str]) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) of one request."""
        if resource == "version":
            return 200, b"1.1.0", "text/plain"
        if resource == "application.wadl":
            lines = "\n".join(f'        <param name="{p}" style="query" type="xs:string"/>' for p in _PARAMS[service])
            return 200, _WADL.format(base=self.url, service=service, params=lines).encode(), "application/xml"
        if resource != "query":
            return 404, b"Error 404: not found\n", "text/plain"
        from obspy import UTCDateTime

        t0 = UTCDateTime(params.get("starttime", "1970-01-01")).timestamp
        t1 = UTCDateTime(params.get("endtime", "2100-01-01")).timestamp
        keys = ("network", "station", "location", "channel")
        hits = [r for r in self.records if r.t0 <= t1 and r.t1 >= t0
                and all(match_codes(code, params.get(k, "")) for code, k in zip(r.codes, keys, strict=True))]
        if not hits:
            return 204, b"", "text/plain"
        if service == "station":
            return 200, _stationxml(hits), "application/xml"
        return 200, b"".join(r.data for r in hits), "application/vnd.fdsn.mseed"

    def _handler(self):
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the self-test prints one line per check
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                loopback.requests.append(self.path)
                if len(parts) != 4 or parts[0] != "fdsnws" or parts[1] not in _PARAMS:
                    code, body, ctype = 404, b"Error 404: not found\n", "text/plain"
                else:
                    params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                    code, body, ctype = loopback.answer(parts[1], parts[3], params)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
