"""Malformed input fed to ``unmix info``, ``features`` and ``separate`` (issue #14, the fuzz-style check).

Every case is built at test time from a small clean record. For each command a case is malformed for, the command
must exit with status 1 or 2, print one line on stderr that names the file, show no traceback, leave nothing that
looks like a finished output (no store, no separated trace, no temporary file) and leave the inputs byte-identical.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import Stream, Trace, UTCDateTime

from unmix.cli import main

T0 = UTCDateTime("2019-07-26T12:00:00")
ALL = ("info", "features", "separate")


def _stream(seconds: float = 600.0, rate: float = 20.0, dtype=np.int32, channels: str = "UVW") -> Stream:
    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    return Stream([Trace(rng.normal(0, 1000, n).astype(dtype),
                         header={"network": "XB", "station": "ELYSE", "location": "02", "channel": f"BH{c}",
                                 "sampling_rate": rate, "starttime": T0}) for c in channels])


def _mseed(st: Stream | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    (st if st is not None else _stream()).write(buf, format="MSEED", reclen=512, **kw)
    return buf.getvalue()


def _sac(tr: Trace | None = None) -> bytes:
    buf = io.BytesIO()
    (tr if tr is not None else _stream(dtype=np.float32)[0]).write(buf, format="SAC")
    return buf.getvalue()


def _poke(data: bytes, offset: int, patch: bytes) -> bytes:
    return data[:offset] + patch + data[offset + len(patch):]


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _nan_mseed() -> bytes:
    st = _stream(dtype=np.float64)
    st[1].data[100:110] = np.nan
    return _mseed(st, encoding="FLOAT64")


def _inf_sac() -> bytes:
    tr = _stream(dtype=np.float32)[0]
    tr.data[5] = np.inf
    return _sac(tr)


def _sac_field(data: bytes, word: int, value: float | int, fmt: str) -> bytes:
    return _poke(data, 4 * word, struct.pack("<" + fmt, value))


def _hdf5() -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["x"] = np.zeros(10)
    return buf.getvalue()


def _steim_garbage() -> bytes:
    data = bytearray(_mseed(encoding="STEIM2"))
    for rec in range(0, len(data), 512):  # every data frame scrambled, headers intact
        data[rec + 64:rec + 512] = bytes((i * 37 + rec) % 256 for i in range(448))
    return bytes(data)


def _mixed_rates() -> bytes:
    st = _stream()
    st[2].stats.sampling_rate = 10.0
    return _mseed(st)


def _overlap_differs() -> bytes:
    raw = _stream()
    edited = raw.copy()
    for tr in edited:
        tr.data = tr.data // 2
    return _mseed(raw + edited.trim(T0 + 100, T0 + 200))


def _one_sample() -> bytes:
    return _mseed(Stream([Trace(np.array([1], dtype=np.int32), header={"network": "XB", "station": "ELYSE",
                                                                       "channel": "BHU", "sampling_rate": 20.0})]))


@dataclass
class Case:
    name: str
    build: Callable[[], bytes]
    suffix: str = ".mseed"
    bad_for: tuple[str, ...] = ALL


def _cases(tmp: Path) -> list[Case]:
    clean = _mseed()
    half = len(clean) // 2 + 100
    return [
        Case("empty file", lambda: b""),
        Case("random bytes", lambda: np.random.default_rng(1).bytes(5000)),
        Case("text named .mseed", lambda: b"network,station\nXB,ELYSE\n" * 50),
        Case("pickle named .mseed",
             lambda: pickle.dumps(("obspy.core.stream", _Marker(str(tmp / "PWNED"))), protocol=2)),
        Case("gzip-compressed miniSEED", lambda: gzip.compress(clean)),
        Case("HDF5 named .mseed", _hdf5),
        Case("PNG named .mseed", lambda: b"\x89PNG\r\n\x1a\n" + bytes(3000)),
        Case("StationXML named .mseed", lambda: b'<?xml version="1.0"?><FDSNStationXML></FDSNStationXML>'),
        Case("QuakeML named .mseed", lambda: b'<?xml version="1.0"?><q:quakeml xmlns:q="x"></q:quakeml>'),
        Case("miniSEED cut mid-record", lambda: clean[:half]),
        Case("overlapping traces with different samples", _overlap_differs),
        Case("miniSEED header overwritten", lambda: _poke(clean, 512 * 5, b"\xff" * 48)),
        Case("miniSEED garbage appended", lambda: clean + np.random.default_rng(2).bytes(700)),
        Case("miniSEED zero-filled block", lambda: _poke(clean, 512 * 8, bytes(2048))),
        Case("miniSEED absurd record length", lambda: _poke(clean, 512 * 3 + 54, b"\x1f")),
        Case("miniSEED Steim2 frames scrambled", _steim_garbage),
        Case("miniSEED NaN samples", _nan_mseed),
        Case("miniSEED ASCII-encoded data", lambda: _mseed(Stream([Trace(np.frombuffer(b"hello world " * 40, "S1"),
                                                                         header={"channel": "BHU"})]),
                                                          encoding="ASCII")),
        Case("miniSEED one sample", _one_sample),
        Case("miniSEED mixed rates in one record", _mixed_rates, bad_for=("features", "separate")),
        Case("SAC truncated", lambda: _sac()[: 632 + 100]),
        Case("SAC npts larger than the file", lambda: _sac_field(_sac(), 79, 10_000_000, "i")),
        Case("SAC zero delta", lambda: _sac_field(_sac(), 0, 0.0, "f")),
        Case("SAC negative delta", lambda: _sac_field(_sac(), 0, -0.05, "f")),
        Case("SAC infinite sample", _inf_sac, suffix=".sac"),
        Case("SAC header only", lambda: _sac()[:632], suffix=".sac"),
        Case("SAC with NaN delta", lambda: _sac_field(_sac(), 0, float("nan"), "f"), suffix=".sac"),
        Case("record shorter than one window", lambda: _mseed(_stream(seconds=60)), bad_for=("features",)),
        Case("single component V with default components", lambda: _mseed(_stream(channels="V")),
             bad_for=("features",)),
        Case("GSE2 header without data", lambda: b"WID2 2019/07/26 12:00:00.000 ELYSE BHU      INT     100  20.000000"
                                                 b"   0.10e+01   1.000 STS-2  -1.0  0.0\nDAT2\nCHK2 0\n"),
    ]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=True)


def _leftovers(out: Path) -> list[str]:
    """Anything the failed run left in its output folder (files, temporary folders)."""
    if not out.exists():
        return []
    return [str(p) for p in out.rglob("*") if p.is_file() or p.name.endswith((".part", ".parts"))]


CASE_NAMES = [c.name for c in _cases(Path("/nonexistent"))]
RUNS = [(c.name, command) for c in _cases(Path("/nonexistent")) for command in c.bad_for]


@pytest.mark.parametrize(("name", "command"), RUNS)
def test_malformed_input(tmp_path, name, command):
    case = next(c for c in _cases(tmp_path) if c.name == name)
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad = inputs / f"bad{case.suffix}"
    bad.write_bytes(case.build())
    before = _snapshot(inputs)
    out = tmp_path / "out"
    args = {"info": ["info", str(bad)],
            "features": ["features", str(bad), "--out", str(out / "store.h5"), "--workers", "0", "--device", "cpu"],
            "separate": ["separate", str(bad), "--out", str(out), "--method", "highpass"]}[command]
    result = _run(args)
    assert result.exit_code in (1, 2), f"{name}: exit {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert _leftovers(out) == []
    assert _snapshot(inputs) == before
    assert not (tmp_path / "PWNED").exists()


def test_there_are_at_least_30_kinds():
    assert len(CASE_NAMES) >= 30 and len(set(CASE_NAMES)) == len(CASE_NAMES)
