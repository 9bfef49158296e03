"""The whole pipeline through the GUI on a short synthetic record: features → train (cancelled, then resumed) →
cluster → separate → export, the views filling, and a project that reopens without recomputing anything."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("torch")

from PySide6.QtCore import Qt  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TINY_FEATURES = {"window": 4096, "hop": 1024, "scales": "1024,4096", "J": 6, "Q": 1}


def _cluster_spans(overlay) -> list:
    """The cluster span items of the clusters bar overlay (not its 'no windows' bands)."""
    from unmix.gui.views.occupancy import SpanItem

    return [item for _plot, item in overlay.items if isinstance(item, SpanItem)]


def _run(qtbot, win, key: str, timeout: int = 120000, **values):
    """Fill a pipeline form, press Run, wait until the job is over; returns its result (a failure fails the test)."""
    jobs = win.jobs
    qtbot.waitUntil(lambda: not jobs.busy and not jobs.queue, timeout=timeout)  # Run is disabled while busy
    jobs.select(key)
    jobs.form(key).set_values(**values)
    finished: list = []
    failed: list = []
    on_finished = lambda title, result: finished.append((title, result))  # noqa: E731
    on_failed = lambda title, message, details: failed.append((title, message))  # noqa: E731
    jobs.job_finished.connect(on_finished)
    jobs.job_failed.connect(on_failed)
    qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    try:
        qtbot.waitUntil(lambda: bool(finished or failed), timeout=timeout)
    finally:
        jobs.job_finished.disconnect(on_finished)
        jobs.job_failed.disconnect(on_failed)
    assert not failed, failed[0]
    title = jobs.specs[[s.key for s in jobs.specs].index(key)].title
    assert finished[0][0] == title
    return finished[0][1]


def test_pipeline_through_the_gui(window, qtbot, tmp_path, screenshot, errors, prefs):
    from obspy import read

    from unmix.gui.main_window import MainWindow

    prefs.device = "cpu"
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30000):
        window.generate_synthetic(hours=1.5, seed=11, start_sol=240)
    key = window.current_key
    results = window.results

    report = _run(qtbot, window, "features", store=str(tmp_path / "features.h5"), **TINY_FEATURES)
    assert report["n_windows"] > 50 and report["computed"] == 1
    assert window.project.results["store"] == str(tmp_path / "features.h5")
    assert list((tmp_path / "inputs").glob("synthetic_seed11_*.mseed"))  # the record went to a file once

    # training: cancel a long run, the window recovers, the same settings resume the cancelled checkpoint
    jobs = window.jobs
    jobs.select("train")
    jobs.form("train").set_values(model=str(tmp_path / "model.pt"), preset="small", epochs=400, clusters=4, seed=3)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10000)
    qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "epoch 1/400" in jobs.current.text(), timeout=90000)
    screenshot(jobs, "pipeline_train_running")
    with qtbot.waitSignal(jobs.job_cancelled, timeout=30000):
        qtbot.mouseClick(jobs.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10000)
    assert jobs.run_button.isEnabled() and not errors
    assert (tmp_path / "model.pt").exists()  # the partial checkpoint left by the cancel
    trained = _run(qtbot, window, "train", epochs=4)
    assert trained["resumed"] and trained["epochs"] >= 4  # (more if the cancel came after the 4th epoch)
    assert window.project.results["model"] == str(tmp_path / "model.pt")

    with qtbot.waitSignal(results.products_shown, timeout=60000):
        _run(qtbot, window, "cluster", table=str(tmp_path / "clusters.h5"))
    table = results.table
    assert window.project.results["table"] == str(tmp_path / "clusters.h5")
    assert table.n_clusters == 5 and table.scales == (1024, 4096)  # 4 and the glitch class
    assert len(_cluster_spans(results.overlay)) == 3  # one per trace row
    panel = results.panel
    assert len(panel.histograms.plots) == np.count_nonzero(table.occupancy(1024))
    assert sum(len(s.data) for s in panel.latent.scatters) == table.n_windows
    assert panel.aligned.aligned  # read back from the synthetic input file
    assert sum(len(a.waveforms) for a in panel.aligned.aligned.values()) >= 10
    results.show_dock()
    screenshot(window, "pipeline_clusters_on_browser")
    window.results_dock.setFloating(True)  # the result views alone, at a readable size
    window.results_dock.resize(1100, 620)
    panel.tabs.setCurrentWidget(panel.histograms)
    screenshot(panel, "pipeline_time_of_day")
    panel.tabs.setCurrentWidget(panel.aligned)
    screenshot(panel, "pipeline_aligned_waveforms")
    panel.aligned.show_combo.setCurrentIndex(1)
    curves = panel.aligned.plots[0].listDataItems()
    assert len(curves) == len(panel.aligned.aligned) and all(c.getOriginalDataset()[0].size > 10 for c in curves)
    screenshot(panel, "pipeline_centroid_spectra")
    panel.aligned.show_combo.setCurrentIndex(0)

    # a click in the latent space moves the browser to that window
    panel.tabs.setCurrentWidget(panel.latent)
    with qtbot.waitSignal(results.window_jumped, timeout=5000):
        panel.latent.select(int(table.n_windows // 2))
    a, b = table.intervals[table.n_windows // 2, 0] - window.displays[key].t_ref
    x0, x1 = window.waveform.x_range()
    assert x0 < a < b < x1

    # separate every window of the largest cluster at the finest scale (high-pass: fast and deterministic)
    biggest = int(np.argmax(table.occupancy(1024)))
    jobs.select("separate")
    jobs.form("separate").set_values(method="highpass", target="cluster", target_clusters=str(biggest))
    screenshot(jobs, "pipeline_separate_form")
    separated = _run(qtbot, window, "separate", method="highpass", freq=0.1, target="cluster",
                     target_clusters=str(biggest), scale=1024)
    assert separated.target.endswith(f"cluster(s) {biggest} at scale 1024")
    total = sum(tr.stats.npts for tr in separated.original)
    assert total >= table.occupancy(1024)[biggest] * 1024 * 3 * 0.99
    assert panel.tabs.currentWidget() is panel.separation
    screenshot(panel, "pipeline_separation")

    # export through the dialog: the batch code of `unmix separate`, background only, then a re-run skips the input
    dialog = results.open_export_dialog()
    qtbot.addWidget(dialog)
    assert list(dialog.form.source_boxes) == ["background", "low_frequency"]
    dialog.form.set_values(folder=str(tmp_path / "export"), format="MSEED")
    dialog.form.source_boxes["low_frequency"].setChecked(False)
    screenshot(dialog, "pipeline_export_dialog")
    with qtbot.waitSignal(results.exported, timeout=60000) as blocker:
        dialog.accept()
    written = blocker.args[0]
    names = sorted(p.name for p in (tmp_path / "export").iterdir())
    stem = next(iter((tmp_path / "inputs").glob("*.mseed"))).stem
    assert names == [f"{stem}.background.mseed", f"{stem}.provenance.json"], names
    back = read(str(tmp_path / "export" / f"{stem}.background.mseed"))
    raw = window.records[key][0].stream  # the background carries its own location code (B + the raw one's last)
    derived = [f"{s.network}.{s.station}.B{s.location[-1:] or '0'}.{s.channel}" for s in (tr.stats for tr in raw)]
    assert sorted(tr.id for tr in back) == sorted(derived)
    assert json.loads((tmp_path / "export" / f"{stem}.provenance.json").read_text())["method"] == "highpass"
    assert written["failed"] == [] and window.project.results["export"] == str(tmp_path / "export")
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=10000)
    again = _run(qtbot, window, "export")
    assert again["skipped"] and not again["files"]

    path = window._write_project(tmp_path / "analysis.unmix.json")
    data = json.loads(path.read_text())
    assert data["results"] == {"store": str(tmp_path / "features.h5"), "model": str(tmp_path / "model.pt"),
                               "table": str(tmp_path / "clusters.h5"), "export": str(tmp_path / "export")}
    assert data["parameters"]["pipeline"]["train"]["epochs"] == 4

    other = MainWindow(prefs)
    qtbot.addWidget(other)
    other.show()
    with qtbot.waitSignal(other.results.products_shown, timeout=60000):
        other.open_paths([str(path)])
    log = other.jobs.log.toPlainText()
    assert "Open cluster table" in log and "Cluster:" not in log and "Train:" not in log
    assert other.results.table.n_windows == table.n_windows
    assert np.array_equal(other.results.table.cluster, table.cluster)
    assert other.jobs.form("train").epochs.value() == 4
    assert other.jobs.form("features").window_size.value() == 4096
    qtbot.waitUntil(lambda: other.current_key is not None, timeout=30000)
    # nothing is recomputed that is on disk: the store, the model and the table are reused as they are
    again = _run(qtbot, other, "features")
    assert again["computed"] == 0 and again["n_windows"] == report["n_windows"]
    assert _run(qtbot, other, "train")["reused"]
    mtime = (tmp_path / "clusters.h5").stat().st_mtime_ns
    _run(qtbot, other, "cluster")
    assert (tmp_path / "clusters.h5").stat().st_mtime_ns == mtime


@pytest.mark.realdata
def test_real_record_features_to_deglitching(window, raw_file, load, qtbot, tmp_path, screenshot, prefs):
    """The S0235b record with the default features: clusters on the browser with the LMST axis, then the template
    deglitcher on the visible span removes glitches."""
    prefs.device = "cpu"
    load(window, [raw_file])
    window.waveform.set_axis_mode("lmst")
    report = _run(qtbot, window, "features", store=str(tmp_path / "features.h5"))
    assert report["n_windows"] >= 60  # (142 840 − 65 536) / 1024 + 1 windows of 55 min
    _run(qtbot, window, "train", model=str(tmp_path / "model.pt"), epochs=3, clusters=4)
    with qtbot.waitSignal(window.results.products_shown, timeout=120000):
        _run(qtbot, window, "cluster", table=str(tmp_path / "clusters.h5"))
    table = window.results.table
    assert table.scales == (1024, 4096, 16384, 65536) and len(_cluster_spans(window.results.overlay)) == 3
    screenshot(window, "real_S0235_clusters_lmst")
    t_ref = window.displays[window.current_key].t_ref
    start = window.records[window.current_key][0].starttime.timestamp - t_ref
    window.waveform.set_x_range(start + 1100, start + 1500)  # a large glitch at about 1350 s
    separated = _run(qtbot, window, "separate", method="template", target="span")
    removed = separated.result.removed["glitches"]
    assert max(abs(tr.data).max() for tr in removed) > 100  # counts: glitches were fitted and removed
    hybrid = _run(qtbot, window, "separate", method="hybrid", residual="none", target="span")
    assert hybrid.result.info["params"]["residual"] == "none" and hybrid.result.info["mode"] == "templates"
    assert max(abs(tr.data).max() for tr in hybrid.result.removed["glitches"]) > 100
    window.results_dock.setFloating(True)
    window.results_dock.resize(1100, 620)
    screenshot(window.results.panel, "real_S0235_deglitched_span")


@pytest.mark.usefixtures("qapp")
def test_forms_start_at_the_pipeline_defaults():
    """The Features and Train forms show the defaults of ``unmix features`` / ``unmix train`` (unmix.pipeline)."""
    from unmix import pipeline
    from unmix.gui.panels.pipeline import PRESET_LABELS, FeaturesForm, TrainForm
    from unmix.model.config import PRESETS

    features = FeaturesForm()
    assert features.config() == pipeline.default_features().to_dict()
    train = TrainForm()
    start = pipeline.default_model()
    values = train.values()
    assert values["preset"] == pipeline.DEFAULT_PRESET
    assert (values["epochs"], values["clusters"], values["seed"]) == (start.epochs, start.clusters, start.seed)
    assert set(PRESET_LABELS) == set(PRESETS)
    train.preset.setCurrentIndex(train.preset.findData("paper"))
    paper = pipeline.default_model("paper")
    assert (train.epochs.value(), train.clusters.value()) == (paper.epochs, paper.clusters)
