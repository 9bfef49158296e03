"""Bounded HTTP GET for the FDSN download: a total deadline per request, a size cap, retries with backoff.

``get`` streams one response body into a file object the caller owns (a temporary file in the cache folder), so a
large body never sits in memory. Each attempt has a total deadline (connection, headers and body together): a timer
shuts the connection's socket down when it runs out, so a server that trickles a byte at a time cannot hold the run,
whatever the per-read ``timeout``. Transient failures (HTTP 5xx, 408, 429 with ``Retry-After``, connection reset or
refused, timeouts, a body cut short) are retried with exponential backoff; other 4xx are not. HTTP 204 and 404 are
returned to the caller (FDSN's "no data"), not raised.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO
from urllib.parse import urlencode, urlsplit, urlunsplit

from unmix.errors import ConfigError
from unmix.jobs import NO_CANCEL, CancelToken

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is waited for this long at most


@dataclass(frozen=True)
class Limits:
    """How long and how much one request may take, and how often a transient failure is retried."""

    timeout: float = 60.0  # seconds without any byte (connect or read)
    deadline: float = 600.0  # seconds for the whole request: connection, headers and body
    max_bytes: int = 256_000_000  # body size cap (a day of 100-sps 3-component int32 data is ≈ 120 MB)
    retries: int = 3  # retries of a transient failure (0: one try)
    retry_delay: float = 2.0  # seconds before the first retry, doubled for each next one

    def check(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        if not self.timeout > 0 or not self.deadline > 0:
            raise ConfigError("timeout and deadline must be positive")
        if self.max_bytes < 1:
            raise ConfigError("the size cap must be at least one byte")
        if self.retries < 0 or self.retry_delay < 0:
            raise ConfigError("retries and the retry delay cannot be negative")


class RequestFailed(Exception):
    """A request that gave no usable body. ``kind``: ``failed`` (this request) or ``unreachable`` (the service)."""

    def __init__(self, text: str, kind: str = "failed", transient: bool = False, retry_after: float | None = None,
                 connect: bool = False) -> None:
        super().__init__(text)
        self.text, self.kind, self.transient = text, kind, transient
        self.retry_after, self.connect = retry_after, connect


def size_text(n: float) -> str:
    """``183.4 kB``-style size."""
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def query_url(base: str, service: str, resource: str = "query", params: dict[str, str] | None = None) -> str:
    """``{base}/fdsnws/{service}/1/{resource}?…``."""
    url = f"{base.rstrip('/')}/fdsnws/{service}/1/{resource}"
    return f"{url}?{urlencode(params)}" if params else url


# --- deadline ---------------------------------------------------------------------------------------------------------


class _Deadline:
    """Shuts down the sockets of one attempt when its total time runs out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._end = time.monotonic() + seconds
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(self._end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the plain socket's shutdown, also for TLS: a reader sees end of stream
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib (redirects, proxies, TLS) with connections that register their socket with ``deadline``."""

    def connect(conn: http.client.HTTPConnection, base_connect) -> None:
        conn.timeout = min(conn.timeout or deadline.seconds, deadline.remaining())
        base_connect()
        deadline.watch(conn.sock)

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            connect(self, super().connect)

    class TlsConn(http.client.HTTPSConnection):
        def connect(self) -> None:
            connect(self, super().connect)

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Conn, req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(TlsConn, req, context=self._context)

    return urllib.request.build_opener(Http(), Https())


# --- one attempt ------------------------------------------------------------------------------------------------------


def _too_large(limit: int) -> RequestFailed:
    return RequestFailed(f"response larger than {size_text(limit)} (the size cap, --max-size); nothing kept")


def _stream(resp: http.client.HTTPResponse, sink: BinaryIO, limit: int) -> int:
    """Copy the (possibly gzip-encoded) body into ``sink`` under the size cap; return the bytes written."""
    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    gz = resp.headers.get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
    if expected is not None and not gz and expected > limit:
        raise _too_large(limit)
    received = written = 0
    while chunk := resp.read(CHUNK):
        received += len(chunk)
        while chunk:
            data = inflate.decompress(chunk, limit - written + 1) if inflate else chunk
            chunk = inflate.unconsumed_tail if inflate else b""
            written += len(data)
            if written > limit:
                raise _too_large(limit)
            sink.write(data)
    if expected is not None and received < expected:
        raise RequestFailed(f"connection cut mid-download ({received} of {expected} bytes received, nothing kept)",
                            transient=True)
    if inflate is not None and not inflate.eof:
        raise RequestFailed(f"connection cut mid-download (compressed body ends early after {received} bytes, "
                            "nothing kept)", transient=True)
    return written


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _http_failure(exc: urllib.error.HTTPError) -> RequestFailed:
    code = exc.code
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "HTTP error"
    try:
        body = exc.read(2000).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        body = ""
    lines = [s.strip() for s in body.splitlines() if s.strip()]
    says = f" (server says: {lines[0][:160]})" if lines else ""
    transient = code >= 500 or code in (408, 429)
    return RequestFailed(f"HTTP {code}: {phrase}{says}", transient=transient,
                         retry_after=_retry_after(exc.headers.get("Retry-After")) if exc.headers else None)


def _connection_failure(exc: BaseException, limits: Limits) -> RequestFailed:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return RequestFailed(f"no answer within {limits.timeout:g} s", "unreachable", transient=True)
    if isinstance(exc, http.client.IncompleteRead):
        return RequestFailed(f"connection cut mid-download ({len(exc.partial)} bytes received, nothing kept)",
                             transient=True)
    if isinstance(exc, urllib.error.URLError):  # no connection at all: refused, host unknown, TLS refused
        if isinstance(reason, socket.gaierror):
            text = "host name not resolved"
        else:
            text = getattr(reason, "strerror", None) or str(reason)
        return RequestFailed(f"cannot connect ({text})", "unreachable", transient=not isinstance(reason, ssl.SSLError),
                             connect=True)
    return RequestFailed(f"connection lost ({type(exc).__name__}: {exc}, nothing kept)".replace(": , ", ", "),
                         transient=True)


def _attempt(url: str, sink: BinaryIO, limits: Limits, user_agent: str) -> int:
    """One try: the HTTP status (200, 204 or 404); the body is in ``sink`` for 200."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent, "Accept-Encoding": "gzip"})
    with _Deadline(limits.deadline) as deadline:
        try:
            try:
                resp = _opener(deadline).open(request, timeout=limits.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return 404
                raise _http_failure(exc) from None
            with resp:
                if resp.status == 204:
                    return 204
                _stream(resp, sink, limits.max_bytes)
            if deadline.expired:  # a close-delimited body ends early when the socket is shut down
                raise _late(limits)
            return resp.status
        except RequestFailed:
            if deadline.expired:
                raise _late(limits) from None
            raise
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise _late(limits) from None
            raise _connection_failure(exc, limits) from None
        except zlib.error as exc:
            raise RequestFailed(f"the compressed response is not valid gzip ({exc}); nothing kept") from None


def _late(limits: Limits) -> RequestFailed:
    return RequestFailed(f"no complete answer within {limits.deadline:g} s (the limit for one request, --deadline)",
                         "unreachable", transient=True)


# --- retries ----------------------------------------------------------------------------------------------------------


def _redacted(url: str) -> str:
    """``url`` without a user name or password, for the log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))) if parts.username else url


def _pause(seconds: float, token: CancelToken) -> None:
    """Sleep, waking early to raise ``Cancelled`` when the token is cancelled."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        token.check()
        time.sleep(min(left, 0.1))
    token.check()


def get(url: str, sink: BinaryIO, limits: Limits, user_agent: str = "unmix", token: CancelToken = NO_CANCEL,
        retry_connect: bool = True) -> int:
    """GET ``url`` into ``sink`` (emptied before each try when seekable); return 200, 204 or 404; raise
    :class:`RequestFailed`.

    ``retry_connect=False`` does not retry a connection that cannot be made at all (the first contact of a run: a
    service that is down is reported at once).
    """
    for attempt in range(limits.retries + 1):
        if sink.seekable():
            sink.seek(0)
            sink.truncate()
        try:
            return _attempt(url, sink, limits, user_agent)
        except RequestFailed as exc:
            last = (attempt == limits.retries or not exc.transient or (exc.connect and not retry_connect)
                    or not sink.seekable())  # a pipe cannot be emptied for another try
            if last:
                if attempt:
                    exc.text += f" ({attempt + 1} tries)"
                raise
            wait = limits.retry_delay * 2 ** attempt
            if exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, MAX_RETRY_AFTER))
            log.info("%s: %s; retry %d of %d in %.0f s", _redacted(url), exc.text, attempt + 1, limits.retries,
                        wait)
            _pause(wait, token)
    raise AssertionError("unreachable")
