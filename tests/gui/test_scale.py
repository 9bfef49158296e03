"""The GUI with large cluster tables: a 32-sol table opens from its file; its views draw a bounded number of items and
points whatever the number of windows; zoomed in, the occupancy over time shows the table's clusters there; the
browser overlay draws at most one run per pixel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    """A 32-sol synthetic table (55 k windows, 4 scales, 16 clusters), saved as HDF5."""
    from unmix.scale_data import synthetic_cluster_table

    path = tmp_path_factory.mktemp("scale") / "table_32sols.h5"
    table = synthetic_cluster_table(32, seed=5)
    table.save(path)
    return table, path


@pytest.fixture
def opened(window, qtbot, big_table):
    """The main window with the 32-sol table opened from its file, every view filled."""
    table, path = big_table
    results = window.results
    with qtbot.waitSignals([results.table_shown, results.products_shown, results.timeline_shown], timeout=60000):
        results.open_table(path)
    assert results.paths["table"] == str(path.resolve())
    return window, table


def _nearest_clusters(table, s: int, centres: np.ndarray) -> np.ndarray:
    """Cluster of the window whose sub-window centre is nearest to each of ``centres`` (POSIX s), -1 where that
    sub-window does not reach there: the rule of the browser overlay, computed here by brute force."""
    iv = table.intervals[:, s]
    mid = iv.mean(axis=1)
    nearest = np.abs(mid[None, :] - centres[:, None]).argmin(axis=1)
    inside = (iv[nearest, 0] <= centres) & (centres < iv[nearest, 1])
    return np.where(inside, table.cluster[nearest, s], -1)


def test_views_are_bounded(opened):
    window, table = opened
    panel = window.results.panel
    timeline = panel.timeline
    timeline.set_layout("timeline")
    width = timeline.width_px()
    assert 100 < width <= timeline.width()
    image = timeline.image.image
    assert image.shape[1] == width  # one image column per pixel, not per window
    items = timeline.plot.getPlotItem().items
    assert items == [timeline.image]  # one graphics item for 55 k windows × 4 scales
    for s in range(len(table.scales)):  # the whole table is in view: every window counted once, by cluster
        cols = timeline.column_counts()[s]
        np.testing.assert_array_equal(cols.sum(axis=0), table.occupancy(table.scales[s]))
    n_sols = timeline.data.clock[0].shape[0]
    assert timeline.clock_image.image.shape == (96, n_sols, 4) and n_sols == 33  # 32 sols from midnight + a bit
    assert sum(len(sc.data) for sc in panel.latent.scatters) == 20000  # the embedding's cap, not 55 k points
    assert all(len(bars.opts["height"]) == 24 for bars in panel.histograms.bars)
    assert panel.summary.text().strip().startswith(f"{table.n_windows} windows")


def test_zoom_shows_the_windows_of_the_table(opened, qtbot):
    window, table = opened
    timeline = window.results.panel.timeline
    timeline.set_layout("timeline")
    data = timeline.data
    for s, scale in enumerate(table.scales):
        # 60 hops (51 s each) of sol 17 afternoon: fewer windows than pixels, so every column is one window
        x0 = 17 * 88775.244 + 13 * 3600.0 - data.t_ref + table.intervals[0, s, 0]
        timeline.set_x_range(x0, x0 + 60 * 51.2)
        qtbot.wait(10)
        cols = timeline.column_counts()[s]
        a, b = timeline.x_range()
        centres = data.t_ref + a + (np.arange(cols.shape[0]) + 0.5) * (b - a) / cols.shape[0]
        expected = _nearest_clusters(table, s, centres)
        shown = np.where(cols.sum(axis=1) > 0, cols.argmax(axis=1), -1)
        assert (cols.sum(axis=1) <= 1).all() and (expected >= 0).all()
        np.testing.assert_array_equal(shown, expected)
        assert len(set(expected.tolist())) > 1 or scale == 65536  # not a trivially uniform stretch
        # and the image: the bottom sub-row of the scale's row has the colour of that cluster
        row = (len(table.scales) - 1 - s) * 32
        colours = timeline.image.image[row].view(np.uint32)[:, 0]
        np.testing.assert_array_equal(colours, timeline.lut.view(np.uint32)[expected, 0])


def test_sol_clock_counts(opened):
    window, table = opened
    timeline = window.results.panel.timeline
    data = timeline.data
    s = 1
    lmst = table.lmst[:, s].mean(axis=1)
    cell = np.floor((lmst - data.first_sol) * 96).astype(int)
    k = table.cluster[:, s]
    for sol, hour_bin in ((0, 40), (12, 8), (25, 60), (31, 90)):
        here = cell == sol * 96 + hour_bin
        np.testing.assert_array_equal(data.clock[s][sol, hour_bin], np.bincount(k[here], minlength=16))
    assert timeline.layout_key() == "clock"  # a 32-sol table opens in sols × LMST
    window.results.bar.set_scale(4096)
    assert timeline.scale_index == 1


def test_overlay_draws_at_most_one_run_per_pixel():
    from unmix.gui.views.occupancy import SpanItem, pixel_runs

    rng = np.random.default_rng(0)
    n = 200_000
    starts = np.arange(n) * 10.0
    ends = starts + 10.0
    ends[5000:5100] -= 5.0  # some holes
    k = rng.integers(0, 12, n)
    item = SpanItem(starts, ends, k)
    for width in (300, 1200):
        a, b, c = item.visible_runs(0.0, starts[-1], width)
        assert 0 < len(a) <= width and (b > a).all() and (a[1:] >= b[:-1]).all()
        assert set(np.unique(c)) <= set(range(12))
    # fewer runs than pixels: the runs themselves (those touching the view's edges included)
    a, b, c = item.visible_runs(100.0, 400.0, 1200)
    np.testing.assert_array_equal(c, k[9:41])
    np.testing.assert_array_equal(a, starts[9:41])
    # a pixel column takes the cluster covering most of it
    a, b, c = pixel_runs(np.array([0.0, 0.3, 1.0]), np.array([0.3, 1.0, 2.0]), np.array([4, 7, 2]), 0.0, 2.0, 2)
    assert c.tolist() == [7, 2] and a.tolist() == [0.0, 1.0] and b.tolist() == [1.0, 2.0]


def test_window_keys_and_record_mask(big_table):
    from unmix.gui.views.occupancy import _record_slots, window_key, window_keys

    table, _path = big_table
    keys = window_keys(table)
    assert keys.shape == (table.n_windows,) and set(keys.tolist()) == {"SY.ELYSE.02.BH"}
    assert window_key(table, 7) == "SY.ELYSE.02.BH"
    names, slot = _record_slots(table)
    assert names.tolist() == ["SY.ELYSE.02.BH"] and (slot == 0).all()


def test_screenshot_128_sols(window, qtbot, screenshot):
    """The occupancy over 128 sols (sols × LMST): saved for a look, tests/screenshots/scale_128sols.png."""
    from unmix.scale_data import synthetic_cluster_table

    table = synthetic_cluster_table(128, seed=0, latent=4)
    results = window.results
    with qtbot.waitSignals([results.products_shown, results.timeline_shown], timeout=60000):
        results.set_table(table)
    panel = results.panel
    results.show_dock()
    window.results_dock.setFloating(True)
    window.results_dock.resize(1200, 640)
    panel.tabs.setCurrentWidget(panel.timeline)
    assert panel.timeline.layout_key() == "clock"
    assert panel.timeline.clock_image.image.shape[:2] == (96, 129)
    screenshot(panel, "scale_128sols")
