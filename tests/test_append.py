"""Output files written piece by piece (unmix.io.append): appended miniSEED reads back as the whole, the kept size and
digest are the file's, and an error leaves nothing behind."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from obspy import Stream, read
from obspy.core import AttribDict

from tests.conftest import make_stream
from unmix.io.append import AppendedFiles, appended_mseed


def _pieces(st: Stream, n: int) -> list[Stream]:
    """``st`` cut into ``n`` consecutive pieces (no sample repeated or lost)."""
    npts = st[0].stats.npts
    edges = np.linspace(0, npts, n + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = Stream()
        for tr in st:
            t = tr.copy()
            t.data = tr.data[a:b].copy()
            t.stats.starttime = tr.stats.starttime + a * tr.stats.delta
            t.stats.mseed = AttribDict(encoding="FLOAT64", dataquality="Q")
            t.stats.processing = [f"piece {a}"]
            part.append(t)
        out.append(part)
    return out


def test_appended_pieces_read_back_as_one_trace_per_channel(tmp_path):
    st = make_stream(npts=20_000)
    target = tmp_path / "x.mseed"
    with appended_mseed(target) as app:
        for part in _pieces(st, 7):
            app.append(part)
        assert not target.exists()  # only a temporary file until the block ends
    back = read(str(target))
    assert len(back) == 3
    for a, b in zip(back, st, strict=True):
        assert a.id == b.id and a.stats.starttime == b.stats.starttime
        np.testing.assert_array_equal(a.data, b.data)
    data = target.read_bytes()
    assert app.bytes == len(data) and app.sha256 == hashlib.sha256(data).hexdigest()
    assert app.ids == {tr.id for tr in st} and len(app.processing) == 7


def test_appended_files_appear_together_and_not_on_error(tmp_path):
    st = make_stream(npts=5_000)
    with AppendedFiles() as files:
        for part in _pieces(st, 3):
            files.append(tmp_path / "a.mseed", part)
            files.append(tmp_path / "b.mseed", part.select(component="U"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mseed", "b.mseed"]
    assert len(read(str(tmp_path / "b.mseed"))) == 1

    failed = tmp_path / "failed"
    with pytest.raises(RuntimeError), AppendedFiles() as files:
        files.append(failed / "c.mseed", _pieces(st, 2)[0])
        raise RuntimeError("disk trouble")
    assert list(failed.iterdir()) == []  # neither the target nor a temporary file


def test_outputs_appear_in_the_order_opened_and_a_failed_one_stops_the_rest(tmp_path, monkeypatch):
    import errno
    import os

    original, renamed = os.replace, []

    def replace(src, dst, *args, **kwargs):
        renamed.append(os.path.basename(dst))
        if renamed[-1] == "b.mseed":
            raise OSError(errno.EIO, "Input/output error", str(dst))
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"), AppendedFiles() as files:
        for part in _pieces(make_stream(npts=3_000), 2):
            for name in "abc":
                files.append(tmp_path / f"{name}.mseed", part)
    assert renamed == ["a.mseed", "b.mseed"]  # c was never put in place
    assert [p.name for p in tmp_path.iterdir()] == ["a.mseed"]  # and its temporary file is gone
