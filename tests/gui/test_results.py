"""Result views on constructed data: occupancy spans, histograms, latent scatter (click → browser), aligned
waveforms, separation overlay, export dialog; and the pure helpers behind them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QPointF, Qt  # noqa: E402

pytestmark = pytest.mark.gui

HOP = 1024
RATE = 20.0


def _table(record, n_clusters: int = 3, scales=(1024, 4096)):
    """A cluster table over ``record``: windows every 1024 samples, clusters in blocks of 8 windows, latent
    means that separate the clusters (what a trained model gives, built by hand)."""
    from obspy import UTCDateTime

    from unmix.clusters import ClusterTable
    from unmix.mars_time import sol_float

    t0 = record.starttime.timestamp
    n = int((record.endtime.timestamp - t0 - max(scales) / RATE) // (HOP / RATE)) + 1
    ends = t0 + max(scales) / RATE + np.arange(n) * HOP / RATE
    intervals = np.stack([np.stack([ends - s / RATE, ends], axis=1) for s in scales], axis=1)
    lmst = np.vectorize(lambda t: float(sol_float(UTCDateTime(t))))(intervals)
    blocks = (np.arange(n) // 8) % n_clusters
    cluster = np.stack([blocks, (blocks + 1) % n_clusters], axis=1).astype(np.int16)
    rng = np.random.default_rng(0)
    prob = np.full((n, len(scales), n_clusters), 0.1, np.float32)
    for j in range(len(scales)):
        prob[np.arange(n), j, cluster[:, j]] = 0.8
    latent = (rng.normal(size=(n, len(scales), 4)) * 0.3 + cluster[..., None] * 3.0).astype(np.float32)
    inputs = [{"path": "/nonexistent/synthetic.mseed", "sha256": "0", "records": [{"key": record.key,
                                                                                     "sampling_rate": RATE}]}]
    return ClusterTable(scales, intervals, lmst, cluster, prob.max(-1), prob, latent,
                        np.zeros(n, np.int32), np.zeros(n, np.int32), inputs, {"sampling_rate": RATE})


@pytest.fixture
def shown(window, qtbot):
    """A window with a 1-hour synthetic record and a constructed cluster table, its views filled."""
    with qtbot.waitSignals([window.jobs.job_finished, window.spectrogram_shown], timeout=30000):
        window.generate_synthetic(hours=1.0, seed=4, start_sol=210)
    key = window.current_key
    table = _table(window.records[key][0])
    with qtbot.waitSignal(window.results.products_shown, timeout=20000):
        window.results.set_table(table)
    return window, table


def test_occupancy_runs_merge_and_tile():
    from unmix.analysis.occupancy import occupancy_runs

    iv = np.array([[0, 10], [10, 20], [20, 30], [30, 40], [60, 70]], float)
    starts, ends, k = occupancy_runs(iv, np.array([1, 1, 2, 2, 2]))
    assert starts.tolist() == [0, 20, 60] and ends.tolist() == [20, 40, 70] and k.tolist() == [1, 2, 2]
    # overlapping long sub-windows (coarse scale, short hop): each instant goes to the nearest centre
    iv = np.array([[0, 40], [10, 50], [20, 60]], float)
    starts, ends, k = occupancy_runs(iv, np.array([0, 3, 3]))
    assert starts.tolist() == [0, 25] and ends.tolist() == [25, 60] and k.tolist() == [0, 3]


def test_merge_and_cluster_spans(shown):
    from unmix.intervals import merge_intervals as merge_spans
    from unmix.pipeline import cluster_spans

    assert merge_spans([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 6)]
    _window, table = shown
    spans = cluster_spans(table, [1], 1024)
    members = table.members([1], 1024)
    assert len(spans) == len(np.unique(np.arange(table.n_windows)[table.cluster[:, 0] == 1] // 8))
    assert sum(b - a for a, b in spans) == pytest.approx(len(members) * HOP / RATE)


def test_occupancy_overlay_scale_toggle_legend(shown, qtbot, screenshot):
    window, table = shown
    overlay, bar = window.results.overlay, window.results.bar
    assert bar.isVisible() and bar.scale() == 1024
    from unmix.gui.views.occupancy import SpanItem

    spans = [item for _plot, item in overlay.items if isinstance(item, SpanItem)]
    assert len(spans) == 3  # one span item per component row (the no-window bands are items of their own)
    starts, ends, k = overlay.runs()
    assert set(k.tolist()) == {0, 1, 2} and len(k) == len(np.unique(np.arange(table.n_windows) // 8))
    t_ref = window.displays[window.current_key].t_ref
    assert starts[0] == pytest.approx(table.intervals[0, 0, 0] - t_ref)
    assert [lbl.text().split("</span> ")[1] for lbl in bar.legend.labels] == [
        f"{c}: {n}" for c, n in enumerate(table.occupancy(1024))]
    window.waveform.set_axis_mode("lmst")
    screenshot(window, "clusters_on_browser")
    bar.toggle.setChecked(False)
    assert overlay.items == []
    bar.toggle.setChecked(True)
    with qtbot.waitSignal(window.results.products_shown, timeout=20000):
        bar.set_scale(4096)
    assert window.results.panel.scale() == 4096
    assert overlay.runs()[2][0] == 1  # the coarse scale's clusters are shifted by one in the table
    # a filtered display rebuilds the rows; the spans come back
    with qtbot.waitSignal(window.filtered_shown, timeout=20000):
        window.waveform.set_filter("Marsquake 0.1–1 Hz")
    assert len([i for _p, i in overlay.items if isinstance(i, SpanItem)]) == 3
    assert all(p in window.waveform.plots for p, _ in overlay.items)


def test_histograms_latent_aligned_fill(shown, screenshot):
    window, table = shown
    panel = window.results.panel
    hist = panel.histograms
    assert len(hist.plots) == table.n_clusters
    for bars in hist.bars:
        heights = bars.opts["height"]
        assert heights.sum() == pytest.approx(100.0) and len(heights) == 24
    assert "cluster 0" in hist.plots[0].titleLabel.text
    latent = panel.latent
    assert len(latent.scatters) == 3
    assert sum(len(s.data) for s in latent.scatters) == table.n_windows
    assert "PCA" in latent.status.text()
    assert panel.aligned.aligned == {}  # the table's input file does not exist: noted, nothing drawn
    assert "aligned waveforms" in window.jobs.log.toPlainText()
    window.results.show_dock()
    panel.tabs.setCurrentWidget(hist)
    screenshot(window, "results_time_of_day")
    window.results_dock.setFloating(True)
    window.results_dock.resize(1000, 560)
    panel.tabs.setCurrentWidget(latent)
    screenshot(panel, "results_latent_space")


def test_latent_click_jumps_browser(shown, qtbot):
    window, table = shown
    panel = window.results.panel
    window.results.show_dock()
    panel.tabs.setCurrentWidget(panel.latent)
    qtbot.wait(100)
    target = 37
    x, y = panel.latent.point_of(target)
    plot = panel.latent.plot
    vb = plot.getPlotItem().getViewBox()
    pos = plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    window.waveform.reset()
    with qtbot.waitSignal(window.results.window_jumped, timeout=5000) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    clicked = blocker.args[0]
    assert table.cluster[clicked, 0] == table.cluster[target, 0]
    assert np.linalg.norm(np.array(panel.latent.point_of(clicked)) - (x, y)) < 1.0
    a, b = table.intervals[clicked, 0] - window.displays[window.current_key].t_ref
    x0, x1 = window.waveform.x_range()
    assert x0 < a < b < x1 and x1 - x0 == pytest.approx(3 * (b - a), rel=1e-3)
    assert window.results.overlay.marked == tuple(table.intervals[clicked, 0])
    assert f"window {clicked}: cluster" in window.statusBar().currentMessage()


def test_aligned_view_draws_members_and_centroid(qtbot, screenshot):
    from unmix.gui.tasks import AlignedSet
    from unmix.gui.views.results import AlignedView

    view = AlignedView()
    qtbot.addWidget(view)
    t = np.arange(200) / 20.0
    rng = np.random.default_rng(1)
    aligned = {k: AlignedSet(t, rng.normal(size=(5, 3, 200)) * 0.2 + np.sin(t * (k + 1)),
                             np.tile(np.sin(t * (k + 1)), (3, 1))) for k in (0, 2)}
    view.set_data(aligned, ["U", "V", "W"], " at scale 1024")
    view.resize(800, 320)
    view.show()
    assert len(view.plots) == 2
    assert len(view.plots[0].listDataItems()) == 6  # five members and the centroid
    view.component_combo.setCurrentIndex(2)
    assert "component W" in view.status.text()
    screenshot(view, "results_aligned_waveforms")


def test_separation_view_toggles_and_export_dialog(window, qtbot, tmp_path, screenshot, errors):
    from unmix.gui.tasks import separate_record

    with qtbot.waitSignal(window.jobs.job_finished, timeout=30000):
        window.generate_synthetic(hours=0.5, seed=6, start_sol=150)
    key = window.current_key
    stream = window.records[key][0].stream
    separated = separate_record(stream, "highpass", {"freq": 0.05}, key=key)
    with qtbot.waitSignal(window.results.separation_shown, timeout=5000):
        window.results.separation_done(separated)
    view = window.results.panel.separation
    assert len(view.plots) == 3 and all(len(c) == 3 for c in view.curves.values())
    x, y = view.curves["background"][0].getOriginalDataset()
    _x, r = view.curves["removed"][0].getOriginalDataset()
    _x, o = view.curves["original"][0].getOriginalDataset()
    assert np.allclose(y + r, o, atol=1e-6 * np.abs(o).max())  # both shifted by the same display offset
    level = view.offsets[stream[0].id]
    assert np.allclose(y + level, separated.result.background.select(id=stream[0].id)[0].data)
    view.toggles["original"].setChecked(False)
    assert not any(c.isVisible() for c in view.curves["original"])
    assert all(c.isVisible() for c in view.curves["background"])
    view.toggles["original"].setChecked(True)
    window.waveform.set_axis_mode("lmst")  # the separation view follows the browser's time axis
    assert all(p.getAxis("bottom").mode == "lmst" for p in view.plots)
    window.results_dock.setFloating(True)
    window.results_dock.resize(1100, 560)
    screenshot(window.results.panel, "results_separation")

    dialog = window.results.open_export_dialog()
    qtbot.addWidget(dialog)
    assert list(dialog.form.source_boxes) == ["background", "low_frequency"]
    dialog.form.source_boxes["background"].setChecked(False)
    dialog.form.source_boxes["low_frequency"].setChecked(False)
    dialog.accept()  # nothing chosen: refused with a message, the dialog stays
    assert errors and errors[-1][0] == "Cannot export" and "at least one source" in errors[-1][1]
    screenshot(dialog, "export_dialog")
    dialog.reject()


def test_separate_form_targets_and_scatcov_options(shown, qtbot):
    from unmix.errors import ConfigError
    from unmix.pipeline import cluster_spans
    from unmix.separation import get_method

    window, table = shown
    form = window.jobs.form("separate")
    window.jobs.select("separate")
    assert form.scale.currentData() == 1024  # defaults from the table: its scales, the most populated cluster
    assert form.background.text() == str(int(table.occupancy(1024).argmax()))
    form.set_values(method="scatcov", background="1,2", scale=4096, n_prior=7, max_iter=3, target="span")
    window.waveform.zoom(0.25)
    x0, x1 = window.waveform.x_range()
    request = form.request()
    t_ref = window.displays[window.current_key].t_ref
    assert request.kwargs["spans"] == [(pytest.approx(t_ref + x0), pytest.approx(t_ref + x1))]
    options = request.kwargs["options"]
    assert options["table"] is table and options["clusters"] == [1, 2] and options["scale"] == 4096
    assert options["n_prior"] == 7 and options["max_iter"] == 3
    # the prior the form computes plus only the options changed from the registry's defaults
    assert set(options) == {"table", "clusters", "scale", "device", "n_prior", "max_iter"}
    assert get_method("scatcov", **options).name == "scatcov"  # the core separator accepts what the form gives
    form.set_values(method="hybrid")
    assert get_method("hybrid", **form.request().kwargs["options"]).name == "hybrid"
    form.set_values(method="template", target="cluster", target_clusters="0", scale=1024)
    request = form.request()
    assert request.kwargs["options"] == {} and request.kwargs["spans"] == cluster_spans(table, [0], 1024)
    assert not form.background.isEnabled() and form.target_clusters.isEnabled()
    form.set_values(target_clusters="x")
    with pytest.raises(ConfigError, match="no cluster named 'x'"):
        form.request()


def test_default_result_paths_follow_the_project(window, tmp_path):
    from pathlib import Path

    features = window.jobs.form("features")
    features.refresh()
    assert features.store.edit.placeholderText() == str(Path.home() / "unmix-results" / "features.h5")
    window._write_project(tmp_path / "mars.unmix.json")
    for form in window.results.forms().values():
        form.refresh()
    assert features.store.value() == str(tmp_path / "mars-results" / "features.h5")
    assert window.jobs.form("cluster").table.value() == str(tmp_path / "mars-results" / "clusters.h5")
    assert window.jobs.form("export").folder.value() == str(tmp_path / "mars-results" / "export")


def test_pipeline_errors_become_dialogs(window, qtbot, tmp_path, errors):
    jobs = window.jobs
    jobs.select("train")
    jobs.form("train").set_values(store=str(tmp_path / "missing.h5"), model=str(tmp_path / "m.pt"))
    with qtbot.waitSignal(jobs.job_failed, timeout=20000):
        qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5000)
    title, text, details = errors[-1]
    assert title == "Train failed" and "missing.h5" in text and "no such feature store" in text and details == ""
    jobs.select("separate")  # nothing open: refused before any job starts
    qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    assert errors[-1][0] == "Separate failed" and "open or generate a record" in errors[-1][1]
    assert jobs.run_button.isEnabled() and not jobs.busy


def test_detrended_aligned_windows_tolerate_members_that_do_not_reach():
    """Aligned windows are NaN where a member does not reach: the trend is fitted on the finite samples."""
    from unmix.gui.views.results import detrended

    t = np.arange(200.0)
    y = np.stack([3.0 + 0.5 * t, np.sin(t / 7) + 0.1 * t])
    y[1, :30] = np.nan
    d = detrended(y)
    assert np.allclose(d[0], 0.0) and np.isnan(d[1, :30]).all() and np.isfinite(d[1, 30:]).all()
    assert abs(np.polyfit(t[30:], d[1, 30:], 1)[0]) < 1e-12
