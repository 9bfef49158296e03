"""The main window on real InSight data and synthetic records: browsing, axes, keys, jobs, projects, errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

pytestmark = pytest.mark.gui


def _width(win) -> float:
    x0, x1 = win.waveform.x_range()
    return x1 - x0


@pytest.mark.realdata
def test_open_real_file_shows_three_rows(window, raw_file, load, screenshot, prefs):
    load(window, [raw_file])
    assert len(window.waveform.plots) == 3
    labels = [p.getAxis("left").labelText for p in window.waveform.plots]
    assert labels == ["BHU [counts]", "BHV [counts]", "BHW [counts]"]  # unit on every row (#17)
    assert window.record_list.keys() == ["XB.ELYSE.02.BH"]
    assert "S0235" in window.span_label.text() and "2019-07-26 11:49:06" in window.span_label.text()
    assert window.device_label.text().startswith("Device: cpu") or "cuda" in window.device_label.text()
    assert prefs.recent_files == [str(raw_file.resolve())]
    x, y = window.waveform.curves[0].getData()
    assert 0 < x.size <= 4 * 1400 + 10  # decimated for display, not 142 840 samples
    assert len(window.spectrogram.images) == 1
    screenshot(window, "main_window_real_S0235")


@pytest.mark.realdata
def test_lmst_axis_ticks_name_the_sol(window, raw_file, load, qtbot, screenshot):
    load(window, [raw_file])
    qtbot.keyClick(window.waveform, Qt.Key.Key_T)
    assert window.waveform.axis_mode == "lmst"
    axis = window.waveform.bottom_axis()
    x0, x1 = window.waveform.x_range()
    levels = axis.tickValues(x0, x1, 1000)
    strings = axis.tickStrings(levels[0][1], 1.0, levels[0][0])
    assert strings and all(s.startswith("S0235 ") for s in strings), strings
    assert "sol 235" in axis.labelText
    assert window.spectrogram.axis.mode == "lmst"
    window.waveform.set_axis_mode("utc")
    levels = axis.tickValues(x0, x1, 1000)
    utc = axis.tickStrings(levels[0][1], 1.0, levels[0][0])
    assert any(s.startswith(("12:", "13:")) for s in utc), utc
    window.waveform.set_axis_mode("lmst")
    qtbot.wait(50)
    screenshot(window.waveform, "waveform_lmst_axis")


@pytest.mark.realdata
def test_zoom_and_pan_with_keys(window, raw_file, load, qtbot):
    load(window, [raw_file])
    view = window.waveform
    full = _width(window)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert _width(window) == pytest.approx(full / 4, rel=1e-3)
    x0 = view.x_range()[0]
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert view.x_range()[0] == pytest.approx(x0 + full / 4, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert view.x_range()[0] == pytest.approx(x0 + full / 4 - full / 16, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert _width(window) == pytest.approx(full / 2, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert _width(window) == pytest.approx(full, rel=1e-3)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    qtbot.wait(60)  # the debounced redraw picks a finer pyramid level for the narrower range
    x, _ = view.curves[0].getData()
    x0, x1 = view.x_range()
    assert x.min() <= x0 and x.max() >= x1


def test_generate_synthetic_with_gaps_filter_and_spectrogram(window, qtbot, screenshot):
    with qtbot.waitSignals([window.jobs.job_finished, window.spectrogram_shown], timeout=30000):
        window.generate_synthetic(hours=6, seed=3, gaps=2, start_sol=300)
    key = window.record_list.keys()[0]
    display = window.displays[key]
    assert len(display.gaps) == 2 and len(window.waveform.plots) == 3
    assert len(window.records[key]) == 3  # three gap-free segments
    assert window.project.synthetic == [{"sols": 1.0, "hours": 6, "seed": 3, "gaps": 2, "start_sol": 300}]
    x, y = window.waveform.curves[0].getData()
    assert (~(y == y)).sum() >= 2  # NaN breaks at the gaps
    assert len(window.spectrogram.images) == 3
    with qtbot.waitSignal(window.filtered_shown, timeout=20000):
        qtbot.keyClick(window.waveform, Qt.Key.Key_F)
    assert window.waveform.display.band == (0.1, 1.0)
    assert "filtered 0.1–1 Hz" in window.waveform.title.text()
    screenshot(window, "main_window_synthetic_filtered")
    with qtbot.waitSignal(window.filtered_shown, timeout=5000):
        qtbot.keyClick(window.waveform, Qt.Key.Key_F)
    assert window.waveform.display.band is None


def test_cancel_running_job_and_recover(window, qtbot, screenshot):
    jobs = window.jobs
    worker = window.generate_synthetic(sols=30, seed=0)
    assert worker is not None and jobs.busy
    with qtbot.waitSignal(worker.signals.progress, timeout=20000):
        pass
    qtbot.wait(300)
    assert jobs.progress_bar.value() > 0
    screenshot(jobs, "pipeline_panel_running")
    with qtbot.waitSignal(jobs.job_cancelled, timeout=20000):
        qtbot.mouseClick(jobs.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5000)
    assert jobs.run_button.isEnabled() and not jobs.cancel_button.isEnabled()
    assert "cancelled" in jobs.log.toPlainText()
    assert window.record_list.keys() == []
    jobs.select("synthetic")
    jobs.form("synthetic").set_values(1.0, "hours", seed=5)
    with qtbot.waitSignal(jobs.job_finished, timeout=30000):
        qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    assert len(window.record_list.keys()) == 1
    screenshot(jobs, "pipeline_panel_after_cancel")


@pytest.mark.realdata
def test_project_save_and_reopen(window, raw_file, load, qtbot, tmp_path, prefs):
    from unmix.gui.main_window import MainWindow

    load(window, [raw_file])
    window.waveform.set_axis_mode("lmst")
    with qtbot.waitSignal(window.filtered_shown, timeout=20000):
        window.waveform.set_filter("Long period 0.01–0.1 Hz")
    path = window._write_project(tmp_path / "analysis.unmix.json")
    data = json.loads(path.read_text())
    assert data["format"] == "unmix-project" and data["inputs"] == [str(raw_file)]
    assert data["parameters"] | {"pipeline": None} == {"axis_mode": "lmst", "filter": "Long period 0.01–0.1 Hz",
                                                      "selected": "XB.ELYSE.02.BH", "pipeline": None,
                                                      "stacked": False}
    assert not list(tmp_path.glob("*.part"))

    other = MainWindow(prefs)
    qtbot.addWidget(other)
    other.show()
    with qtbot.waitSignals([other.jobs.job_finished, other.filtered_shown], timeout=30000):
        other.open_paths([str(path)])
    assert other.record_list.keys() == ["XB.ELYSE.02.BH"]
    assert other.waveform.axis_mode == "lmst"
    assert other.waveform.display.band == (0.01, 0.1)
    assert other.project.path == path and other.project.inputs == [str(raw_file)]


def test_corrupt_file_shows_error_dialog(window, qtbot, tmp_path, errors):
    bad = tmp_path / "broken.mseed"
    bad.write_bytes(b"000001D ELYSE  BHU02XB" + bytes(range(256)) * 3)
    with qtbot.waitSignal(window.jobs.job_failed, timeout=20000):
        window.open_paths([str(bad)])
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=5000)
    assert len(errors) == 1
    title, text, details = errors[0]
    assert title == "Load files failed" and "broken.mseed" in text
    assert details == ""  # a user error: one line, no traceback
    assert window.jobs.run_button.isEnabled()


def test_bad_project_file_shows_error(window, tmp_path, errors):
    path = tmp_path / "x.unmix.json"
    path.write_text("{not json")
    assert window.open_project(path) is None
    assert errors and "x.unmix.json" in errors[0][1]


def test_drag_and_drop_opens_files(window, qtbot, tmp_path):
    from unmix.synthetic import SyntheticConfig, generate

    generate(SyntheticConfig(hours=0.5, seed=2, start_sol=100)).mixture.write(str(tmp_path / "m.mseed"), "MSEED")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "m.mseed"))])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.jobs.job_finished, timeout=20000):
        window.dropEvent(event)
    assert event.isAccepted()
    assert window.record_list.keys() == ["SY.ELYSE.02.BH"]
    assert window.project.inputs == [str(tmp_path / "m.mseed")]


def test_settings_dialog_stores_device(window, prefs, monkeypatch):
    from PySide6.QtWidgets import QDialog

    from unmix.gui.views.dialogs import SettingsDialog

    def accept_cpu(dialog):
        dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
        dialog.accept()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(SettingsDialog, "exec", accept_cpu)
    window.open_settings()
    assert prefs.device == "cpu"
    assert window.device_label.text() == "Device: cpu"


def _two_days_of_one_instrument(tmp_path):
    """Two miniSEED files of the same channels, a day apart (as two separate downloads would be)."""
    import numpy as np
    from obspy import Stream, Trace, UTCDateTime

    paths = []
    for day in range(2):
        rng = np.random.default_rng(day)
        st = Stream([Trace(rng.normal(size=2000).astype(np.float32),
                           {"network": "XB", "station": "ELYSE", "location": "02", "channel": f"BH{c}",
                            "sampling_rate": 20.0, "starttime": UTCDateTime(2019, 7, 26 + day)})
                     for c in "UVW"])
        path = tmp_path / f"day{day}.mseed"
        st.write(str(path), format="MSEED")
        paths.append(str(path))
    return paths


def test_reopened_project_keeps_separate_loads_apart(window, load, qtbot, tmp_path, prefs):
    """Files of one instrument opened one at a time are two records; reopening the project must not merge them
    (and files opened together stay one record)."""
    from unmix.gui.main_window import MainWindow

    a, b = _two_days_of_one_instrument(tmp_path)
    load(window, [a])
    load(window, [b])
    assert window.record_list.keys() == ["XB.ELYSE.02.BH", "XB.ELYSE.02.BH#2"]
    path = window._write_project(tmp_path / "two.unmix.json")
    assert json.loads(path.read_text())["loads"] == [[a], [b]]

    other = MainWindow(prefs)
    qtbot.addWidget(other)
    other.show()
    with qtbot.waitSignal(other.jobs.job_finished, timeout=30000):
        other.open_paths([str(path)])
    keys = other.record_list.keys()
    assert keys == ["XB.ELYSE.02.BH", "XB.ELYSE.02.BH#2"]
    starts = [other.displays[k].t_ref for k in keys]
    assert starts[1] - starts[0] == pytest.approx(86400.0, abs=1.0)
    assert other.project.loads == [[a], [b]]  # reloading does not list the loads twice
    saved = other._write_project(tmp_path / "again.unmix.json")
    assert json.loads(saved.read_text())["loads"] == [[a], [b]]

    together = MainWindow(prefs)
    qtbot.addWidget(together)
    together.show()
    load(together, [a, b])
    assert together.record_list.keys() == ["XB.ELYSE.02.BH"]
    path = together._write_project(tmp_path / "one.unmix.json")
    third = MainWindow(prefs)
    qtbot.addWidget(third)
    third.show()
    with qtbot.waitSignal(third.jobs.job_finished, timeout=30000):
        third.open_paths([str(path)])
    assert third.record_list.keys() == ["XB.ELYSE.02.BH"]
