"""Time views that must agree with each other: spectrogram vs browser, LMST caption vs ticks, separation vs browser."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import UTCDateTime
from PySide6.QtCore import Qt

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

START = "2019-07-26T11:49:00"


def make_stream(components: str, npts: int, rate: float, start: str):
    from obspy import Stream, Trace

    rng = np.random.default_rng(0)
    traces = []
    for c in components:
        tr = Trace(rng.standard_normal(npts).cumsum() * 0.01 + rng.standard_normal(npts))
        tr.stats.network, tr.stats.station, tr.stats.location, tr.stats.channel = "XB", "ELYSE", "02", "BH" + c
        tr.stats.sampling_rate, tr.stats.starttime = rate, UTCDateTime(start)
        traces.append(tr)
    return Stream(traces)


def _write(tmp_path, hours: float = 2.0, rate: float = 20.0, name: str = "two_hours.mseed"):
    st = make_stream("UVW", npts=int(hours * 3600 * rate), rate=rate, start=START)
    path = tmp_path / name
    st.write(str(path), format="MSEED")
    return path


def _screen_x(plot, view, x: float) -> int:
    """Global screen x of view coordinate ``x`` in pyqtgraph ``plot`` drawn by graphics view ``view``."""
    from PySide6.QtCore import QPointF

    scene = plot.getViewBox().mapViewToScene(QPointF(x, 0.0))
    return view.viewport().mapToGlobal(view.mapFromScene(scene)).x()


def test_spectrogram_time_axis_lines_up_with_the_browser(window, tmp_path, load, qtbot, screenshot):
    load(window, [_write(tmp_path)])
    qtbot.wait(100)
    t13 = UTCDateTime("2019-07-26T13:00:00").timestamp - window.displays[window.current_key].t_ref
    wave = _screen_x(window.waveform.plots[-1], window.waveform.graphics, t13)
    spec = _screen_x(window.spectrogram.plot.getPlotItem(), window.spectrogram.plot, t13)
    screenshot(window, "spectrogram_aligned_with_browser")
    assert abs(wave - spec) <= 2, (wave, spec)
    for x in window.waveform.x_range():  # both ends: same origin and same scale
        wave = _screen_x(window.waveform.plots[-1], window.waveform.graphics, x)
        spec = _screen_x(window.spectrogram.plot.getPlotItem(), window.spectrogram.plot, x)
        assert abs(wave - spec) <= 2, (x, wave, spec)


def test_spectrogram_window_follows_the_zoom(window, tmp_path, load, qtbot, screenshot):
    load(window, [_write(tmp_path)])
    key, comp = window.current_key, window.spectrogram.component()
    whole = window.spectrograms[(key, comp)][0]
    assert whole == pytest.approx(2 ** round(np.log2(7200 / 120 * 20)) / 20)  # ~60 s: 1024 samples at 20 sps
    x0, x1 = window.waveform.x_range()
    with qtbot.waitSignal(window.spectrogram_shown, timeout=10000):
        window.waveform.set_x_range(x0 + 1800, x0 + 2400)  # ten minutes
    zoomed, (c0, c1), tiles = window.spectrograms[(key, comp)]
    assert zoomed <= whole / 8
    assert c0 <= x0 + 1800 and c1 >= x0 + 2400 and c1 - c0 < 3600  # only around the visible span
    assert tiles and f"window {zoomed:g} s" in window.spectrogram.status.text()
    screenshot(window, "spectrogram_zoomed")


def test_spectrogram_window_from_span():
    from unmix.gui.display import spectrogram_window

    assert spectrogram_window(7200, 20.0) == 1024 / 20.0
    assert spectrogram_window(7200, 10.0) == 512 / 10.0
    assert spectrogram_window(88775, 20.0) > spectrogram_window(600, 20.0) >= 32 / 20.0


def test_lmst_caption_agrees_with_ticks_a_hair_before_midnight():
    from unmix.gui.views.time_axis import TimeAxis

    axis = TimeAxis("bottom")
    axis.set_reference(UTCDateTime("2019-10-01T00:00:00").timestamp)
    axis.set_mode("lmst")
    v = axis.from_clock(299.99999999977 * 86400.0)
    assert axis.format(v, 60.0).startswith("S0300 ")
    assert axis.describe(v).endswith("sol 300")


def test_separation_view_shares_the_browser_time_origin_and_range(window, qtbot, tmp_path, load, screenshot):
    from unmix.gui.tasks import separate_record

    load(window, [_write(tmp_path, hours=0.5)])
    key = window.current_key
    stream = window.records[key][0].stream
    part = stream.copy().trim(stream[0].stats.starttime + 300, stream[0].stats.starttime + 1200)
    separated = separate_record(part, "highpass", {"freq": 0.05}, key=key)
    with qtbot.waitSignal(window.results.separation_shown, timeout=5000):
        window.results.separation_done(separated)
    view = window.results.panel.separation
    assert view.t_ref == window.displays[key].t_ref  # one x for one time in both
    x, _y = view.curves["background"][0].getOriginalDataset()
    assert x[0] == pytest.approx(300.0)
    window.waveform.set_x_range(400.0, 700.0)
    assert view.x_range() == pytest.approx((400.0, 700.0))
    view.set_x_range(500.0, 900.0)  # and the browser follows the separation view
    assert window.waveform.x_range() == pytest.approx((500.0, 900.0))
    # removed part in its own rows, never over the background
    removed = set(map(id, view.curves["removed"]))
    assert not any(id(c) in removed for p in view.plots for c in p.listDataItems())
    assert all(any(id(c) in removed for c in p.listDataItems()) for p in view.removed_plots)
    bottom = view.all_plots()[-1].getAxis("bottom")
    assert bottom.labelText.startswith("UTC  2019-07-26")  # x caption
    assert all("[counts]" in p.getAxis("left").labelText for p in view.all_plots())  # y units
    window.results_dock.show()
    window.results_dock.raise_()
    window.resizeDocks([window.results_dock], [320], Qt.Orientation.Vertical)
    qtbot.wait(100)
    assert min(p.getViewBox().height() for p in view.all_plots()) >= 50  # docked rows stay usable (they scroll)
    screenshot(window, "separation_docked")
    window.results_dock.setFloating(True)
    window.results_dock.resize(1100, 700)
    qtbot.wait(100)
    screenshot(window.results.panel, "separation_view")


def test_separation_status_names_scatcov_part_once():
    from obspy import Stream

    from unmix.gui.views.results import _separation_summary, _unit
    from unmix.separation.result import SeparationResult

    st = make_stream("U", 100, 20.0, START)
    text = _separation_summary(SeparationResult(st, {"removed": st}, {"method": "scatcov"}), "cluster 3")
    assert "removed removed" not in text and text.startswith("scatcov: removed ") and "cluster 3" in text
    assert "low_frequency" in _separation_summary(SeparationResult(st, {"low_frequency": st}, {}))
    tr = st[0].copy()
    tr.stats.processing = ["ObsPy 1.4.1: remove_response(output='ACC'::pre_filt=None)"]
    assert _unit([tr]) == "m/s²" and _unit(list(Stream([st[0]]))) == "counts"
