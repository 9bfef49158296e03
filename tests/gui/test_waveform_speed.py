"""The browser's cheap repaint (#17): one visible time axis under the last row, the grid drawn by a light item per
row at that axis's ticks (not by the axes), cached tick texts, y ranges fitted to the visible points; the analyst
keeps the time axis (UTC/LMST), the units, the linked rows."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

RATE = 10.0
T0 = 1_564_142_946.0  # 2019-07-26T12:09:06 UTC, sol 235


def make_display(station: str = "ELYSE", t0: float = T0, seconds: float = 2 * 3600.0, seed: int = 0):
    """Display of a 3-component record (UVW) of ``station`` starting at POSIX ``t0``."""
    from obspy import Stream, Trace, UTCDateTime

    from unmix.gui.display import build_display
    from unmix.io import build_records

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    traces = [Trace(rng.normal(size=n) * (1 + i), header={
        "network": "XB", "station": station, "location": "02", "channel": f"BH{comp}",
        "sampling_rate": RATE, "starttime": UTCDateTime(t0)}) for i, comp in enumerate("UVW")]
    return build_display(build_records(Stream(traces)))


@pytest.fixture
def browser(qtbot):
    import pyqtgraph as pg

    from unmix.gui.views.waveform import WaveformView

    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(1000, 500)
    view.show()
    qtbot.waitExposed(view)
    view.set_display(make_display())
    qtbot.wait(30)
    return view


def _visible(axis) -> bool:
    return axis.isVisible() and axis.style["showValues"]


def test_one_time_axis_under_the_last_row(browser, screenshot):
    rows = browser.plots
    assert len(rows) == 3 and len(browser.rows) == 3
    assert [p.getAxis("bottom").isVisible() for p in rows] == [False, False, True]
    bottom = browser.bottom_axis()
    assert bottom is rows[-1].getAxis("bottom") and _visible(bottom)
    assert bottom.labelText == "UTC  2019-07-26"
    assert [p.getAxis("left").labelText for p in rows] == ["BHU [counts]", "BHV [counts]", "BHW [counts]"]
    assert all(p.getAxis(side).grid is False for p in rows for side in ("left", "bottom"))  # no axis-drawn grid
    # the rows stay linked: one x range
    browser.set_x_range(600.0, 1200.0)
    assert all(p.getViewBox().viewRange()[0] == pytest.approx([600.0, 1200.0]) for p in rows)
    screenshot(browser, "waveform_one_time_axis")


def test_grid_follows_the_time_axis_ticks(browser, qtbot):
    bottom = browser.bottom_axis()
    for x0, x1 in ((0.0, 7000.0), (1000.0, 1300.0), (2000.5, 2010.0)):
        browser.set_x_range(x0, x1)
        width = browser.rows[0].plot.getViewBox().width()
        major = bottom.tickValues(x0, x1, width)[0][1]
        for row in browser.rows:
            assert row.grid.major.tolist() == pytest.approx(major)
            assert row.grid.minor.size == 0 or not np.isin(row.grid.minor, row.grid.major).any()
            assert row.grid.separator == (row is not browser.rows[-1])
    browser.set_axis_mode("lmst")
    assert browser.bottom_axis().labelText == "LMST at InSight, sol 235"
    x0, x1 = browser.x_range()
    lmst_major = bottom.tickValues(x0, x1, browser.rows[0].plot.getViewBox().width())[0][1]
    assert browser.rows[0].grid.major.tolist() == pytest.approx(lmst_major)
    assert lmst_major != pytest.approx(major)  # LMST ticks fall elsewhere than UTC's


def test_tick_texts_cached_per_mode(browser):
    from unmix.gui.views.waveform import CachedTimeAxis

    axis = browser.bottom_axis()
    assert isinstance(axis, CachedTimeAxis)
    values = [600.0, 660.0, 720.0]
    utc = axis.tickStrings(values, 1.0, 60.0)
    assert utc == [axis.format(v, 60.0) for v in values] == axis.tickStrings(values, 1.0, 60.0)
    axis.set_mode("lmst")
    lmst = axis.tickStrings(values, 1.0, 60.0)
    assert lmst == [axis.format(v, 60.0) for v in values] and lmst != utc
    assert all(s.startswith("S0235 ") for s in lmst)


def test_rows_fit_the_visible_points_and_keep_their_gain(browser, qtbot):
    browser.set_x_range(1000.0, 1600.0)
    browser.refresh()
    for row in browser.rows:
        x, y = row.curve.getData()
        y = y[(x >= 1000.0) & (x <= 1600.0)]
        lo, hi = row.plot.getViewBox().viewRange()[1]
        span = float(y.max() - y.min())
        assert lo <= y.min() and hi >= y.max() and hi - lo < 1.3 * span
    browser.set_gain(1, 4.0)
    x, y = browser.curves[1].getData()
    y = y[(x >= 1000.0) & (x <= 1600.0)]
    lo, hi = browser.plots[1].getViewBox().viewRange()[1]
    assert hi - lo == pytest.approx(float(y.max() - y.min()) / 4, rel=1e-3)
    browser.pan(0.5)
    browser.refresh()  # the gain holds across a pan (the range is recomputed from the new points)
    lo, hi = browser.plots[1].getViewBox().viewRange()[1]
    x, y = browser.curves[1].getData()
    x0, x1 = browser.x_range()
    y = y[(x >= x0) & (x <= x1)]
    assert hi - lo == pytest.approx(float(y.max() - y.min()) / 4, rel=1e-3)
    assert "×4" in browser.plots[1].getAxis("left").labelText
