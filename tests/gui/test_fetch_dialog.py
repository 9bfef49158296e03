"""The "Fetch data" dialog against the local FDSN stand-in: fetch as a job, progress, cancel, files opened."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from fdsn_standin import FdsnStandIn  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.realdata]

LEFT = Qt.MouseButton.LeftButton
SDS1, SDS2 = ([f"2019/XB/ELYSE/BH{c}.D/XB.ELYSE.03.BH{c}.D.2019.{doy}" for c in "UVW"] for doy in (142, 143))


@pytest.fixture
def standin(insight):
    with FdsnStandIn(insight) as server:
        yield server


def _dialog(window, standin, out):
    dialog = window.open_fetch_dialog()
    dialog.set_request(standin.url, "XB", "ELYSE", "03", "BH?", "2019-05-22 23:00:00", "2019-05-23 03:00:00", out)
    return dialog


def test_fetch_dialog_downloads_and_opens_the_files(qtbot, window, standin, tmp_path, errors, screenshot):
    dialog = _dialog(window, standin, tmp_path / "cache")
    assert dialog.isVisible() and window.open_fetch_dialog() is dialog  # one dialog per window
    progress: list[float] = []
    dialog.progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(dialog.fetch_done, timeout=20000) as done:
        qtbot.mouseClick(dialog.fetch_button, LEFT)
    report = done.args[0]
    sds_names = [f"XB.ELYSE.03.BH{c}.D.2019.{doy}" for doy in (142, 143) for c in "UVW"]  # the SDS day files
    assert report.ok and sorted(p.name for p in report.waveform_files()) == sorted(sds_names)
    assert dialog.progress.value() == 1000 and len(progress) >= 2
    assert f"{sds_names[0]}  (downloaded)" in dialog.outcome.toPlainText()
    assert dialog.fetch_button.isEnabled() and not dialog.cancel_button.isEnabled()
    # the fetched day files open in the browser as one record (the midnight overlap merged)
    qtbot.waitUntil(lambda: "XB.ELYSE.03.BH" in window.displays, timeout=30000)
    records = window.records["XB.ELYSE.03.BH"]
    assert records[0].starttime.isoformat().startswith("2019-05-22T23:19:27")
    assert records[-1].endtime.isoformat().startswith("2019-05-23T02:24:23")
    assert "Fetch data: started" in window.jobs.log.toPlainText()
    screenshot(dialog, "fetch_dialog_done")

    n = len(standin.queries())
    with qtbot.waitSignal(dialog.fetch_done, timeout=20000) as again:  # the second fetch downloads nothing
        dialog.start_fetch()
    assert again.args[0].requests == 0 and len(standin.queries()) == n
    assert "nothing to download" in dialog.status.text()
    assert not errors


def test_fetch_dialog_cancel_and_errors(qtbot, window, standin, tmp_path, errors):
    standin.add_fault("dataselect", "delay", day="2019-05-22", seconds=0.8)
    dialog = _dialog(window, standin, tmp_path / "cache")
    with qtbot.waitSignal(dialog.fetch_ended, timeout=20000) as ended:
        dialog.start_fetch()
        qtbot.waitUntil(lambda: len(standin.queries("dataselect")) == 1, timeout=10000)  # inside the first day
        assert dialog.cancel_button.isEnabled()
        qtbot.mouseClick(dialog.cancel_button, LEFT)
    assert ended.args == ["cancelled"]
    assert "Cancelled" in dialog.status.text()
    # the request under way completes; the next one is never made, nothing is half-written
    cache = tmp_path / "cache"
    assert all((cache / p).exists() for p in SDS1) and not any((cache / p).exists() for p in SDS2)
    assert len(standin.queries("dataselect")) == 1
    assert not list((tmp_path / "cache").glob(".*.part"))

    standin.clear_faults()
    standin.add_fault("dataselect", 404)
    dialog.out_dir.setText(str(tmp_path / "other"))
    with qtbot.waitSignal(dialog.fetch_ended, timeout=20000) as ended:
        dialog.start_fetch()
    assert ended.args == ["failed"]
    assert "no data for XB.ELYSE.03.BH?" in dialog.status.text()
    assert errors and errors[-1][0] == "Fetch data failed" and "no data for XB.ELYSE.03.BH?" in errors[-1][1]

    dialog.set_request("", out_dir="")
    dialog.start_fetch()  # a bad field is reported in the dialog, nothing starts
    assert "enter the URL" in dialog.status.text() and not dialog.running
