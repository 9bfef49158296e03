"""Clusters bar with two records (only the shown record's windows and counts) and the "no windows here" bands
(first window length of a record, data gaps) at every scale."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

RATE = 10.0
WINDOW, HOP, SCALES = 4096, 1024, (1024, 4096)


def _record(station: str, t0: float, seconds: float, gap: tuple[float, float] | None = None):
    """A 3-component record of ``station`` starting at POSIX ``t0``; with ``gap`` (s after t0) two segments."""
    from obspy import Stream, Trace, UTCDateTime

    from unmix.io import build_records

    rng = np.random.default_rng(len(station))
    spans = [(0.0, seconds)] if gap is None else [(0.0, gap[0]), (gap[1], seconds)]
    traces = []
    for a, b in spans:
        for comp in "UVW":
            n = int((b - a) * RATE)
            tr = Trace(rng.normal(size=n).astype(np.float64), header={
                "network": "XB", "station": station, "location": "02", "channel": f"BH{comp}",
                "sampling_rate": RATE, "starttime": UTCDateTime(t0 + a)})
            traces.append(tr)
    return build_records(Stream(traces))


def _windows(record_segments, shift: int):
    """Windows of one record as the features cut them: window WINDOW, hop HOP, each scale's last sub-window."""
    ends = []
    for seg in record_segments:
        t0, t1 = seg.starttime.timestamp, seg.endtime.timestamp + 1 / RATE
        n = int((t1 - t0 - WINDOW / RATE) // (HOP / RATE)) + 1
        ends.append(t0 + WINDOW / RATE + np.arange(n) * HOP / RATE)
    end = np.concatenate(ends)
    iv = np.stack([np.stack([end - s / RATE, end], axis=1) for s in SCALES], axis=1)
    k = ((np.arange(end.size) // 4 + shift) % 3).astype(np.int16)
    return iv, np.stack([k, (k + 1) % 3], axis=1)


def _table(records_a, records_b):
    """One table over two inputs with different record keys; clusters differ between the records."""
    from unmix.clusters import ClusterTable

    iv_a, k_a = _windows(records_a, 0)
    iv_b, k_b = _windows(records_b, 2)
    iv, k = np.concatenate([iv_a, iv_b]), np.concatenate([k_a, k_b])
    n = iv.shape[0]
    input_index = np.r_[np.zeros(len(iv_a)), np.ones(len(iv_b))].astype(np.int32)
    inputs = [{"path": f"/nonexistent/{r[0].key}.mseed", "sha256": "0",
               "records": [{"key": r[0].key, "sampling_rate": RATE}]} for r in (records_a, records_b)]
    prob = np.full((n, len(SCALES), 3), 0.2, np.float32)
    latent = np.zeros((n, len(SCALES), 2), np.float32)
    return ClusterTable(SCALES, iv, np.zeros_like(iv), k, prob.max(-1), prob, latent, input_index,
                        np.zeros(n, np.int32), inputs, {"sampling_rate": RATE})


@pytest.fixture
def overlay(qtbot):
    """A browser with an occupancy bar; two records of different stations, the second with a 30-min gap and
    starting at the same time as the first (time alone cannot tell their windows apart)."""
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from unmix.gui.display import build_display
    from unmix.gui.views.occupancy import OccupancyBar, OccupancyOverlay
    from unmix.gui.views.waveform import WaveformView

    t0 = 1_564_000_000.0
    rec_a = _record("ELYSE", t0, 3 * 3600.0)
    rec_b = _record("ELYHK", t0, 4 * 3600.0, gap=(3600.0, 5400.0))
    host = QWidget()
    browser, bar = WaveformView(), OccupancyBar()
    lay = QVBoxLayout(host)
    lay.addWidget(browser)
    lay.addWidget(bar)
    qtbot.addWidget(host)
    host.resize(1200, 600)
    host.show()
    occ = OccupancyOverlay(browser, bar)
    table = _table(rec_a, rec_b)
    displays = {r[0].key: build_display(r) for r in (rec_a, rec_b)}
    occ.host = host  # keeps the widgets alive for the test
    return occ, browser, table, displays, (rec_a, rec_b)


def _legend(bar) -> list[int]:
    return [int(lbl.text().rsplit(": ", 1)[1]) for lbl in bar.legend.labels]


def test_two_records_show_only_their_own_windows(overlay, screenshot):
    occ, browser, table, displays, (rec_a, rec_b) = overlay
    key_a, key_b = rec_a[0].key, rec_b[0].key
    assert key_a != key_b
    browser.set_display(displays[key_a])
    occ.set_table(table)
    is_a = table.input_index == 0
    for scale in SCALES:
        occ.bar.set_scale(scale)
        s = table.scale_index(scale)
        assert _legend(occ.bar) == np.bincount(table.cluster[is_a, s], minlength=3).tolist()
        starts, ends, _k = occ.runs()
        t_ref = displays[key_a].t_ref
        lo, hi = table.intervals[is_a, s, 0].min() - t_ref, table.intervals[is_a, s, 1].max() - t_ref
        assert starts.min() == pytest.approx(lo) and ends.max() == pytest.approx(hi)
        assert (ends - starts).sum() == pytest.approx(hi - lo)  # one record: no overlap with the other's windows
    browser.set_display(displays[key_b])
    occ.redraw()
    is_b = ~is_a
    s = table.scale_index(occ.scale)
    assert _legend(occ.bar) == np.bincount(table.cluster[is_b, s], minlength=3).tolist()
    assert _legend(occ.bar) != np.bincount(table.cluster[is_a, s], minlength=3).tolist()
    screenshot(occ.host, "clusters_two_records")
    # a record the table does not cover: no spans, no counts, a note (never every window of the table)
    other = _record("ELYS0", 1_564_000_000.0, 3 * 3600.0)
    from unmix.gui.display import build_display

    browser.set_display(build_display(other))
    occ.redraw()
    assert occ.runs()[0].size == 0
    assert [lbl.text() for lbl in occ.bar.legend.labels] == ["no windows of this record in the cluster table"]
    assert len(occ.gaps) == 1 and occ.gaps[0][2].startswith("this record has no windows in the cluster table")


def test_no_windows_bands_at_every_scale(overlay, screenshot):
    from unmix.gui.views.occupancy import NoWindowsItem

    occ, browser, table, displays, (_rec_a, rec_b) = overlay
    display = displays[rec_b[0].key]
    browser.set_display(display)
    occ.set_table(table)
    for scale in SCALES:
        occ.bar.set_scale(scale)
        gaps = occ.gaps
        lead = (WINDOW - scale) / RATE
        first = [g for g in gaps if "first window length of the record" in g[2]]
        after = [g for g in gaps if "first window length of a segment after a gap" in g[2]]
        holes = [g for g in gaps if g[2].startswith("data gap")]
        if lead:
            assert len(first) == 1 and first[0][0] == pytest.approx(0.0, abs=0.2)
            assert first[0][1] - first[0][0] == pytest.approx(lead, abs=0.2)
            assert len(after) == 1 and after[0][0] == pytest.approx(5400.0, abs=0.2)
        else:  # the window's own scale covers the record from its first sample
            assert first == [] and after == []
        assert len(holes) == 1 and holes[0][0] == pytest.approx(3600.0, abs=0.2)
        assert holes[0][1] == pytest.approx(5400.0, abs=0.2)
        # everything else that has samples is covered by some window, up to the tail shorter than one hop
        covered = sum(b - a for a, b in
                      zip(*occ.runs()[:2], strict=True))
        assert covered + sum(b - a for a, b, _ in gaps) == pytest.approx(4 * 3600.0, abs=0.5)
        bands = [item for _p, item in occ.items if isinstance(item, NoWindowsItem)]
        assert len(bands) == len(browser.plots)
        if lead:
            assert "first window length of the record" in bands[0].reason_at(lead / 2)
        assert bands[0].reason_at(4000.0).startswith("data gap")
        assert bands[0].reason_at(2 * 3600.0 + 1000.0) is None
        assert occ.bar.no_windows.text().startswith(f"▨ no windows: {len(gaps)} span")
        assert "data gap" in occ.bar.no_windows.toolTip()
    occ.bar.set_scale(SCALES[0])
    browser.set_x_range(-200.0, 1200.0)
    screenshot(occ.host, "clusters_no_windows")


def test_windows_missing_inside_a_record_are_not_blamed_on_the_window_length(overlay):
    from unmix.gui.views.occupancy import no_window_spans

    _occ, _browser, table, displays, (rec_a, _rec_b) = overlay
    display = displays[rec_a[0].key]
    s = table.scale_index(1024)
    iv = table.intervals[table.input_index == 0, s]
    t_ref = display.t_ref
    dropped = (iv[:, 0] - t_ref > 3000.0) & (iv[:, 1] - t_ref < 5000.0)
    spans = no_window_spans(display, iv[~dropped], 1024, WINDOW, RATE)
    inside = [g for g in spans if g[0] > 2000.0 and g[1] < 6000.0]
    assert len(inside) == 1 and inside[0][2].startswith("no windows in the cluster table here")
    assert inside[0][1] - inside[0][0] == pytest.approx(iv[dropped, 1].max() - iv[dropped, 0].min(), abs=0.2)
    assert "first window length of the record" in spans[0][2]
