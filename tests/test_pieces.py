"""Separation of long records in overlapping pieces (unmix.separation.pieces): the kept parts tile the record, match
the whole-record separation, cancel promptly and keep the memory of a separation bounded whatever the length."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
from obspy import Stream

from unmix.baselines import HighpassSeparator, TemplateDeglitcher
from unmix.instrument import glitch_template
from unmix.io.append import AppendedFiles
from unmix.jobs import Cancelled, CancelToken
from unmix.separation.base import PieceExtent
from unmix.separation.pieces import combined_info, join_pieces, piece_bounds, sample_grid, separate_in_pieces
from unmix.synthetic import SyntheticConfig, generate

HOUR = 3600.0


def _record(hours: float, seed: int = 3, joins_every: float | None = None) -> Stream:
    """A synthetic record (background, glitches, spikes); with ``joins_every`` (s), strong extra glitches whose
    templates straddle every multiple of it (onsets 20 s before and 1.5 s after), where pieces meet."""
    st = generate(SyntheticConfig(hours=hours, seed=seed, include=("background", "glitches", "spikes"))).mixture
    if joins_every is None:
        return st
    fs = st[0].stats.sampling_rate
    for k, tr in enumerate(st):
        for j, join in enumerate(np.arange(joins_every, hours * HOUR, joins_every)):
            for shift, amp in ((-20.0, 4000.0), (1.5, -3000.0)):
                onset = join + shift + 0.37 * (k + 1) / fs
                i0 = int(np.floor(onset * fs))
                wave = glitch_template(fs, 60.0, onset - i0 / fs)
                lo = i0 - int(2.0 * fs)
                tr.data[lo:lo + wave.size] += amp * (1 + 0.1 * j) * wave
    return st


def _joined(parts, product: str) -> Stream:
    """Each trace of ``product`` put together from the pieces, checking that they follow on sample by sample."""
    out = Stream()
    for c in range(len(parts[0].background)):
        segs = [(p.background if product == "background" else p.removed[product])[c] for p in parts]
        for s0, s1 in zip(segs[:-1], segs[1:], strict=True):
            assert s1.id == s0.id
            assert abs(s1.stats.starttime - (s0.stats.endtime + s0.stats.delta)) < 1e-6  # no gap, no repeat
        tr = segs[0].copy()
        tr.data = np.concatenate([s.data for s in segs])
        out.append(tr)
    return out


def _assert_same(parts, whole, tolerance: float, x: Stream) -> None:
    """Every product of the pieces equals the whole record's one within ``tolerance`` × the signal's RMS."""
    assert len(parts) > 1
    for product, full in [("background", whole.background), *whole.removed.items()]:
        joined = _joined(parts, product)
        for a, b, raw in zip(joined, full, x, strict=True):
            assert a.id == b.id and a.stats.starttime == b.stats.starttime and a.stats.npts == b.stats.npts
            rms = float(np.sqrt(np.mean(raw.data**2)))
            assert np.max(np.abs(a.data - b.data)) <= tolerance * rms, product


def test_piece_bounds_tile_the_record():
    extent = PieceExtent(kept=1000, margin=300)
    for n in (1600, 1601, 2500, 10_000, 12_345):
        bounds = piece_bounds(n, extent)
        if n <= 1600:
            assert bounds == [(0, 0, n, n)]
            continue
        assert bounds[0][1] == 0 and bounds[-1][2] == n
        for (lo, a, b, hi), nxt in zip(bounds, [*bounds[1:], None], strict=True):
            assert 0 < b - a <= 1000 and lo == max(0, a - 300) and hi == min(n, b + 300)
            if nxt is not None:
                assert nxt[1] == b  # kept parts follow on
    assert piece_bounds(5000, None) == [(0, 0, 5000, 5000)]


def test_short_record_is_separated_whole_exactly_as_before():
    x = _record(2.0)
    sep = HighpassSeparator()
    assert sample_grid(x).npts <= sum(2 * [sep.piece_extent(20.0).margin]) + sep.piece_extent(20.0).kept
    (part,) = list(separate_in_pieces(x, sep))
    whole = sep.separate(x)
    assert "piece" not in part.info
    for a, b in zip([*part.background, *part.removed["low_frequency"]],
                    [*whole.background, *whole.removed["low_frequency"]], strict=True):
        assert a.stats == b.stats and np.array_equal(a.data, b.data)


def test_highpass_in_pieces_matches_the_whole_record():
    """The margin lets each pass's start-up transient decay to 1e-12 of the step that starts it (at most the
    largest sample, ~50 RMS here, times the filter's overshoot, < 2): what is left is round-off, far below 1e-9 RMS."""
    x = _record(6.0)
    sep = HighpassSeparator()
    sep.piece_seconds = HOUR
    parts = list(separate_in_pieces(x, sep))
    assert len(parts) == 6
    _assert_same(parts, sep.separate(x), 1e-9, x)


def test_template_in_pieces_matches_the_whole_record():
    """With glitches straddling every join, pieces find and fit the same glitches from the same samples (the margin
    holds a chain of fit windows, the jerk taper and both detectors' band-pass transients decayed to 1e-4): the
    same least-squares problems, so the same catalogue and outputs equal to round-off (1e-9 RMS)."""
    x = _record(4.0, joins_every=HOUR)
    sep = TemplateDeglitcher()
    sep.piece_seconds = HOUR
    parts = list(separate_in_pieces(x, sep))
    whole = sep.separate(x)
    _assert_same(parts, whole, 1e-9, x)
    pieced = combined_info([p.info for p in parts])["catalogue"]
    assert len(whole.info["catalogue"]) >= 2 * 3 * 3  # the glitches at the joins were found
    assert [(e["channel"], e["onset"]) for e in pieced] == [(e["channel"], e["onset"]) for e in whole.info["catalogue"]]
    np.testing.assert_allclose([e["amplitude"] for e in pieced], [e["amplitude"] for e in whole.info["catalogue"]],
                               rtol=1e-9)


def test_pieces_written_one_after_the_other_read_back_as_the_whole(tmp_path):
    from obspy import read
    from obspy.core import AttribDict

    x = _record(3.0)
    sep = HighpassSeparator()
    sep.piece_seconds = HOUR / 2
    with AppendedFiles() as files:
        for part in separate_in_pieces(x, sep):
            for tr in part.background:
                tr.stats.mseed = AttribDict(encoding="FLOAT64")
            files.append(tmp_path / "bg.mseed", part.background)
    back = read(str(tmp_path / "bg.mseed"))
    whole = sep.separate(x).background
    assert len(back) == len(whole) == 3  # one trace per channel again
    for a, b in zip(back, whole, strict=True):
        assert a.stats.starttime == b.stats.starttime and a.stats.npts == b.stats.npts
        assert np.max(np.abs(a.data - b.data)) <= 1e-9 * np.sqrt(np.mean(b.data**2))


def test_joined_pieces_are_the_whole_record_trace_by_trace():
    x = _record(3.0)
    sep = HighpassSeparator()
    sep.piece_seconds = HOUR / 2
    parts = list(separate_in_pieces(x, sep))
    joined = join_pieces([p.removed["low_frequency"] for p in parts])
    whole = sep.separate(x).removed["low_frequency"]
    assert len(parts) == 6 and [tr.id for tr in joined] == [tr.id for tr in whole]
    for a, b in zip(joined, whole, strict=True):
        assert a.stats.starttime == b.stats.starttime and a.stats.npts == b.stats.npts
        assert np.max(np.abs(a.data - b.data)) <= 1e-9 * np.sqrt(np.mean(b.data**2))
    later = parts[-1].background.copy()
    for tr in later:
        tr.stats.starttime += 60.0  # a gap: a run of its own
    assert len(join_pieces([parts[0].background, later])) == 6


def test_scatcov_in_pieces_tiles_the_record_and_its_parts_add_up():
    from unmix.separation.scatcov import ScatCovSeparator

    rng = np.random.default_rng(4)
    x = _record(1.0)[:1]
    x[0].data = x[0].data[:4096].copy()
    sep = ScatCovSeparator(prior=rng.standard_normal((8, 1, 256)), piece=256, max_iter=2, device="cpu",
                           detrend="none")
    sep.piece_problems = 4
    assert sep.piece_extent(20.0) == PieceExtent(kept=1024, margin=512)
    spline = ScatCovSeparator(prior=rng.standard_normal((8, 1, 256)), piece=256)  # the default: two knot spacings more
    spline.piece_problems = 4
    assert spline.piece_extent(20.0) == PieceExtent(kept=1024, margin=512 + 2 * 2000)
    parts = list(separate_in_pieces(x, sep))
    assert len(parts) == 4 and [p.info["piece"]["index"] for p in parts] == [0, 1, 2, 3]
    background, removed = _joined(parts, "background")[0], _joined(parts, "removed")[0]
    assert background.stats.starttime == x[0].stats.starttime and background.stats.npts == 4096
    np.testing.assert_allclose(background.data + removed.data, x[0].data, atol=1e-9 * np.abs(x[0].data).max())


def test_cancelling_inside_a_long_record_stops_within_a_second():
    x = _record(12.0)
    token = CancelToken()
    sep = TemplateDeglitcher()  # the default pieces: cancelled inside the first one
    assert len(piece_bounds(sample_grid(x).npts, sep.piece_extent(20.0))) == 2
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        token.cancel()

    timer = threading.Timer(1.0, cancel)
    timer.start()
    with pytest.raises(Cancelled):
        for _ in separate_in_pieces(x, sep, token=token):
            pass
    stopped = time.perf_counter()
    timer.join()
    assert stopped - cancelled_at[0] < 1.0


def _peak_while_separating(x: Stream, sep, folder) -> int:
    """Peak traced bytes above what was held before, while separating ``x`` and writing its background."""
    from obspy.core import AttribDict

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with AppendedFiles() as files:
            for part in separate_in_pieces(x, sep):
                for tr in part.background:
                    tr.stats.mseed = AttribDict(encoding="FLOAT64")
                files.append(folder / "bg.mseed", part.background)
                del part
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_memory_of_a_separation_in_pieces_does_not_grow_with_the_record(tmp_path):
    sep = HighpassSeparator()
    sep.piece_seconds = HOUR / 2
    short, long = _record(2.0), _record(8.0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    peak_1 = _peak_while_separating(short, sep, tmp_path / "a")
    peak_4 = _peak_while_separating(long, sep, tmp_path / "b")
    assert peak_4 < 1.5 * peak_1, (peak_1, peak_4)
