"""Long miniSEED files separated window by window (unmix.io.windows): the windows tile the file, the outputs and the
provenance are those of reading the file whole, and memory follows the window, not the file."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from obspy import Stream, read

from tests.test_pieces import _record
from unmix.baselines import HighpassSeparator, TemplateDeglitcher
from unmix.export import export_separation
from unmix.io import integrity, windows
from unmix.io.windows import read_windows
from unmix.synthetic import SyntheticConfig, generate

HOUR = 3600.0


def _as_raw(st: Stream, path, record_length: int = 512) -> Stream:
    """``st`` rounded to counts and written as Steim-2 miniSEED, as raw data comes."""
    st = st.copy()
    for tr in st:
        tr.data = np.round(tr.data).astype(np.int32)
    st.write(str(path), format="MSEED", encoding="STEIM2", reclen=record_length)
    return st


def _gapped(x: Stream, gap_start: float, gap_end: float) -> Stream:
    """``x`` without the samples from ``gap_start`` to ``gap_end`` seconds after its start."""
    out = Stream()
    for tr in x:
        t0 = tr.stats.starttime
        out += Stream([tr.slice(t0, t0 + gap_start), tr.slice(t0 + gap_end, tr.stats.endtime)])
    return out


def _outputs(folder) -> dict[str, Stream]:
    return {p.name.split(".")[-2]: read(str(p)) for p in sorted(folder.glob("*.mseed"))}


def _provenance(folder) -> dict:
    return json.loads(next(folder.glob("*.provenance.json")).read_text())


def _separate(path, out, window_s: float, monkeypatch, **kw) -> None:
    monkeypatch.setattr(windows, "WINDOW_SECONDS", window_s)
    report = export_separation([path], out, **kw)
    assert len(report.done) == 1, report


def _assert_same_outputs(a_dir, b_dir, tolerance: float = 1e-9) -> None:
    a, b = _outputs(a_dir), _outputs(b_dir)
    assert a.keys() == b.keys() and "background" in a
    for name in a:
        assert [tr.id for tr in a[name]] == [tr.id for tr in b[name]], name  # one trace per channel run again
        for x, y in zip(a[name], b[name], strict=True):
            assert x.stats.starttime == y.stats.starttime and x.stats.npts == y.stats.npts, name
            rms = float(np.sqrt(np.mean(y.data.astype(float) ** 2))) or 1.0
            assert np.max(np.abs(x.data - y.data)) <= tolerance * rms, name


def test_windows_tile_a_long_file_and_short_or_foreign_files_are_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "CHUNK_RECORDS", 16)  # runs of records as fine as this small file needs
    raw = _as_raw(generate(SyntheticConfig(hours=3.5, seed=2, include=("background",))).mixture, tmp_path / "x.mseed")
    found = read_windows(tmp_path / "x.mseed", lambda rate: 100.0, window_s=HOUR)
    assert found is not None and len(found) == 4
    start, end = raw[0].stats.starttime, raw[0].stats.endtime
    assert found[0].keep[0] == start and found[-1].keep[1] > end
    for w0, w1 in zip(found[:-1], found[1:], strict=True):
        assert w0.keep[1] == w1.keep[0] and w0.keep[1] - w0.keep[0] == HOUR
    assert all(abs((w.keep[0] - w.read.start) - (100.0 + 2 / 20.0)) < 1e-6 for w in found)
    size = (tmp_path / "x.mseed").stat().st_size
    assert all(sum(b - a for a, b in w.read.ranges) < 0.5 * size for w in found)  # only the window's records
    assert read_windows(tmp_path / "x.mseed", lambda rate: 100.0, window_s=4 * HOUR) is None  # one window
    assert read_windows(tmp_path / "x.mseed", lambda rate: None, window_s=HOUR) is None  # method needs it whole
    raw[:1].write(str(tmp_path / "x.sac"), format="SAC")
    assert read_windows(tmp_path / "x.sac", lambda rate: 100.0, window_s=HOUR) is None
    blob = (tmp_path / "x.mseed").read_bytes()
    (tmp_path / "cut.mseed").write_bytes(blob[: len(blob) // 2 + 100])  # a record cut short: damaged
    assert read_windows(tmp_path / "cut.mseed", lambda rate: 100.0, window_s=HOUR) is None


def test_highpass_window_by_window_writes_what_the_whole_file_gives(tmp_path, monkeypatch):
    monkeypatch.setattr(HighpassSeparator, "piece_seconds", HOUR / 2)
    _as_raw(_record(4.2), tmp_path / "x.mseed")
    _separate(tmp_path / "x.mseed", tmp_path / "whole", 1e9, monkeypatch, method="highpass")
    _separate(tmp_path / "x.mseed", tmp_path / "win", HOUR, monkeypatch, method="highpass")
    _assert_same_outputs(tmp_path / "win", tmp_path / "whole")
    whole, win = _provenance(tmp_path / "whole"), _provenance(tmp_path / "win")
    assert len(whole["records"]) == len(win["records"]) == 1
    for key in ("record", "start", "end", "npts"):
        assert win["records"][0][key] == whole["records"][0][key], key
    assert len(win["records"][0]["info"]["pieces"]) == 9  # 4 windows of 2 pieces and a 0.2-h one, one record


def test_template_window_by_window_finds_the_glitches_at_the_joins(tmp_path, monkeypatch):
    monkeypatch.setattr(TemplateDeglitcher, "piece_seconds", HOUR)
    _as_raw(_record(3.0, joins_every=HOUR), tmp_path / "x.mseed")
    _separate(tmp_path / "x.mseed", tmp_path / "whole", 1e9, monkeypatch, method="template")
    _separate(tmp_path / "x.mseed", tmp_path / "win", HOUR, monkeypatch, method="template")
    _assert_same_outputs(tmp_path / "win", tmp_path / "whole")
    cat_whole = _provenance(tmp_path / "whole")["records"][0]["info"]["catalogue"]
    cat_win = _provenance(tmp_path / "win")["records"][0]["info"]["catalogue"]
    assert len(cat_whole) >= 2 * 3 * 2  # the glitches either side of the joins were found
    assert [(e["channel"], e["onset"]) for e in cat_win] == [(e["channel"], e["onset"]) for e in cat_whole]
    np.testing.assert_allclose([e["amplitude"] for e in cat_win], [e["amplitude"] for e in cat_whole], rtol=1e-9)


def test_a_gap_gives_the_same_records_window_by_window(tmp_path, monkeypatch):
    monkeypatch.setattr(HighpassSeparator, "piece_seconds", HOUR / 2)
    _as_raw(_gapped(_record(4.0), 1.3 * HOUR, 1.4 * HOUR), tmp_path / "x.mseed")
    _separate(tmp_path / "x.mseed", tmp_path / "whole", 1e9, monkeypatch, method="highpass")
    _separate(tmp_path / "x.mseed", tmp_path / "win", HOUR, monkeypatch, method="highpass")
    _assert_same_outputs(tmp_path / "win", tmp_path / "whole")
    whole, win = _provenance(tmp_path / "whole")["records"], _provenance(tmp_path / "win")["records"]
    assert len(whole) == 2
    assert [[r[k] for k in ("record", "start", "end", "npts")] for r in win] == \
        [[r[k] for k in ("record", "start", "end", "npts")] for r in whole]


def test_windows_inside_a_long_gap_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(HighpassSeparator, "piece_seconds", HOUR / 4)
    _as_raw(_gapped(_record(4.0), 1.0 * HOUR, 3.0 * HOUR), tmp_path / "x.mseed")
    monkeypatch.setattr(integrity, "CHUNK_RECORDS", 16)
    found = read_windows(tmp_path / "x.mseed", lambda rate: HighpassSeparator().piece_extent(rate).margin / rate,
                         window_s=HOUR / 2)
    assert found is not None and any(not w.read.ranges for w in found)  # windows that fall in the gap
    _separate(tmp_path / "x.mseed", tmp_path / "whole", 1e9, monkeypatch, method="highpass")
    _separate(tmp_path / "x.mseed", tmp_path / "win", HOUR / 2, monkeypatch, method="highpass")
    _assert_same_outputs(tmp_path / "win", tmp_path / "whole")
    whole, win = _provenance(tmp_path / "whole")["records"], _provenance(tmp_path / "win")["records"]
    assert [[r[k] for k in ("record", "start", "end", "npts")] for r in win] == \
        [[r[k] for k in ("record", "start", "end", "npts")] for r in whole]


@pytest.mark.parametrize("hours", [8.0])
def test_memory_follows_the_window_not_the_file(tmp_path, monkeypatch, hours):
    monkeypatch.setattr(HighpassSeparator, "piece_seconds", HOUR / 2)
    monkeypatch.setattr(windows, "WINDOW_SECONDS", HOUR)
    peaks = []
    for k, length in enumerate((2.0, hours)):
        path = tmp_path / f"x{k}.mseed"
        _as_raw(_record(length), path)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            export_separation([path], tmp_path / f"out{k}", method="highpass")
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks
