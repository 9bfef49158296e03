"""Annotations, physical units, amplitude zoom and custom filter corners in the browser (issue #17)."""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pytest
from obspy import UTCDateTime

from unmix.catalogs import read_catalog
from unmix.errors import InputFileError
from unmix.gui.annotations import Annotation, parse_annotation, read_annotations_csv, write_annotations
from unmix.gui.project import Project

RESPONSE = "response/XB.ELYSE.02.BH.xml"
SHOTS = "/tmp/s3"


def _shot(window, screenshot, name: str) -> None:
    """Screenshot into the tests' folder (README) and a copy for the reviewer in /tmp/s3."""
    path = screenshot(window, name)
    with contextlib.suppress(OSError):
        shutil.copy(path, f"{SHOTS}/k_{name}.png")


# --- plain data -------------------------------------------------------------------------------------------------


def test_annotation_times_posix_or_iso_and_strict_fields():
    a = parse_annotation({"kind": "span", "start": "2019-07-26T12:00:00Z", "end": 1564142460.5, "label": "S0235b",
                          "channel": "XB.ELYSE.02.BHU"})
    assert a.start == UTCDateTime("2019-07-26T12:00:00").timestamp and a.end == 1564142460.5
    for bad, word in (({"kind": "note", "start": 0, "end": 0}, "kind"),
                      ({"kind": "span", "start": 10, "end": 5}, "before start"),
                      ({"kind": "pick", "start": 1, "end": 2}, "pick"),
                      ({"kind": "span", "start": "yesterday", "end": 5}, "ISO"),
                      ({"kind": "span", "start": 1, "end": 2, "colour": "red"}, "unknown"),
                      ({"kind": "span", "start": 1, "end": 2, "label": {"nested": 1}}, "label"),
                      ({"kind": "span", "start": True, "end": 2}, "true/false")):
        with pytest.raises(ValueError, match=word):
            parse_annotation(bad)


def test_project_keeps_annotations_and_refuses_bad_ones(tmp_path):
    marks = [Annotation("span", 1564142400.0, 1564142460.0, "quake", "XB.ELYSE.02.BHU").to_json(),
             Annotation("pick", 1564142430.25, 1564142430.25, "P", "XB.ELYSE.02.BHW").to_json()]
    path = Project(annotations=marks).save(tmp_path / "a.unmix.json")
    assert Project.load(path).annotations == marks
    data = json.loads(path.read_text())
    data["annotations"][1]["start"] = "2019-07-26T12:00:30.25Z"  # ISO is accepted and read as POSIX seconds
    data["annotations"][1]["end"] = "2019-07-26T12:00:30.25Z"
    path.write_text(json.dumps(data))
    assert Project.load(path).annotations[1]["start"] == pytest.approx(1564142430.25)
    data["annotations"][0]["end"] = [1, 2]
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match=r"annotations\[0\]\.end"):
        Project.load(path)


def test_exports_read_back(tmp_path):
    marks = [Annotation("span", 1564142400.0, 1564142460.0, "quake", "XB.ELYSE.02.BHU"),
             Annotation("pick", 1564142430.25, 1564142430.25, "P onset", "XB.ELYSE.02.BHW")]
    assert read_annotations_csv(write_annotations(marks, tmp_path / "a.csv")) == marks
    qml = read_catalog(write_annotations(marks, tmp_path / "a.xml"))
    assert [e.kind for e in qml] == ["annotation-span", "annotation-pick"]
    assert [e.name for e in qml] == ["quake", "P onset"]
    assert [(e.start.timestamp, e.end.timestamp) for e in qml] == [
        (pytest.approx(a.start, abs=1e-3), pytest.approx(a.end, abs=1e-3)) for a in marks]
    assert [(e.seed_id, e.components) for e in qml] == [("XB.ELYSE.02.BH?", "U"), ("XB.ELYSE.02.BH?", "W")]
    markers = read_catalog(write_annotations(marks, tmp_path / "a.markers"))
    assert [round(e.start.timestamp, 3) for e in markers] == [a.start for a in marks]
    assert [round(e.end - e.start, 3) for e in markers] == [60.0, 0.0]


# --- in the browser ---------------------------------------------------------------------------------------------


def _row_point(window, row: int, fraction: float):
    """Viewport position at ``fraction`` of the visible width, mid-height of a row."""
    from PySide6.QtCore import QPointF

    vb = window.waveform.plots[row].getViewBox()
    rect = vb.sceneBoundingRect()
    scene = QPointF(rect.left() + fraction * rect.width(), rect.center().y())
    return window.waveform.graphics.mapFromScene(scene)


def _drag(qtbot, window, row: int, f0: float, f1: float | None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    viewport = window.waveform.graphics.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _row_point(window, row, f0))
    if f1 is not None:
        QTest.mouseMove(viewport, _row_point(window, row, (f0 + f1) / 2))
        QTest.mouseMove(viewport, _row_point(window, row, f1))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       _row_point(window, row, f0 if f1 is None else f1))


def test_annotations_marked_saved_reloaded_and_exported(window, qtbot, load, raw_file, tmp_path, screenshot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    load(window, [raw_file])
    wf, ctl = window.waveform, window.annotations
    x0, x1 = wf.x_range()
    t_ref = wf.display.t_ref
    QTest.keyClick(wf, Qt.Key.Key_A)  # annotation mode
    assert ctl.active
    ctl.panel.label_edit.setText("S0235b")
    _drag(qtbot, window, 0, 0.30, 0.45)
    ctl.panel.label_edit.setText("P")
    _drag(qtbot, window, 2, 0.35, None)
    assert wf.x_range() == (x0, x1)  # the drag marked, it did not pan
    assert [a.kind for a in ctl.annotations] == ["span", "pick"]
    span, pick = ctl.annotations
    assert (span.label, span.channel, pick.label, pick.channel) == ("S0235b", "XB.ELYSE.02.BHU", "P",
                                                                     "XB.ELYSE.02.BHW")
    width = x1 - x0
    assert span.start - t_ref == pytest.approx(x0 + 0.30 * width, abs=0.01 * width)
    assert span.end - t_ref == pytest.approx(x0 + 0.45 * width, abs=0.01 * width)
    assert pick.start == pick.end and pick.start - t_ref == pytest.approx(x0 + 0.35 * width, abs=0.01 * width)
    assert ctl.panel.table.rowCount() == 2 and len(ctl.items) > 0
    window.annotations_dock.raise_()
    _shot(window, screenshot, "annotations")
    # label edited in the list
    ctl.panel.table.item(1, 3).setText("P onset")
    assert ctl.annotations[1].label == "P onset"

    path = window._write_project(tmp_path / "marks.unmix.json")
    assert path is not None and len(json.loads(path.read_text())["annotations"]) == 2
    kept = list(ctl.annotations)
    window.clear_session()
    assert ctl.annotations == [] and ctl.panel.table.rowCount() == 0
    with qtbot.waitSignals([window.jobs.job_finished, window.display_shown], timeout=30000):
        window.open_project(path)
    assert ctl.annotations == kept and ctl.panel.table.rowCount() == 2
    qtbot.waitUntil(lambda: len(ctl.items) >= 2 * len(wf.plots), timeout=5000)  # drawn on the reopened record

    ctl.go_to(1)  # double-click on a row: the browser centres on that mark
    g0, g1 = wf.x_range()
    assert (g0 + g1) / 2 == pytest.approx(kept[1].start - wf.display.t_ref, abs=0.5) and g1 - g0 == pytest.approx(60)
    for suffix in ("csv", "xml", "markers"):
        written = ctl.export(tmp_path / f"marks.{suffix}")
        if suffix == "csv":
            assert read_annotations_csv(written) == kept
        else:
            back = read_catalog(written)
            assert [round(e.start.timestamp, 2) for e in back] == [round(a.start, 2) for a in kept]
    ctl.panel.table.selectRow(0)
    ctl.delete_selected()
    assert [a.kind for a in ctl.annotations] == ["pick"] and ctl.panel.table.rowCount() == 1
    QTest.keyClick(wf, Qt.Key.Key_A)
    assert not ctl.active


def test_response_removal_and_rotation_with_the_shared_stationxml(window, qtbot, load, raw_file, insight,
                                                                  screenshot):
    response = insight / RESPONSE
    if not response.exists():
        pytest.skip(f"{response} not found")
    load(window, [raw_file])
    wf = window.waveform
    counts = float(np.nanmax(np.abs(wf.display.traces["U"].segments[0].raw)))
    assert wf.display.unit == "counts" and "[counts]" in wf.plots[0].getAxis("left").labelText
    with qtbot.waitSignal(window.filtered_shown, timeout=120000):
        window.units.set_conversion("VEL", str(response))
    assert wf.display.unit == "m/s" and wf.display.components == ["U", "V", "W"]
    assert all("[m/s]" in p.getAxis("left").labelText for p in wf.plots)
    vel = float(np.nanmax(np.abs(wf.display.traces["U"].segments[0].raw)))
    assert counts > 100 and 1e-11 < vel < 1e-4  # counts of a VBB vs. Mars ground velocity
    _shot(window, screenshot, "units_vel")
    with qtbot.waitSignal(window.filtered_shown, timeout=120000):
        window.units.set_conversion("ACC", str(response), rotate=True)
    assert wf.display.components == ["Z", "N", "E"] and wf.display.unit == "m/s²"
    assert [p.getAxis("left").labelText for p in wf.plots] == [f"BH{c} [m/s²]" for c in "ZNE"]
    params = window.current_project().parameters
    assert (params["units"], params["response"], params["rotate"]) == ("ACC", str(response), True)
    with qtbot.waitSignal(window.filtered_shown, timeout=10000):
        window.units.set_conversion("COUNTS")
    assert wf.display.unit == "counts" and wf.display.components == ["U", "V", "W"]


def test_per_row_gain_zooms_amplitude(window, qtbot, load, raw_file, screenshot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    load(window, [raw_file])
    wf = window.waveform
    qtbot.wait(50)
    x, y = wf.curves[1].getData()
    x0, x1 = wf.x_range()
    y = y[(x >= x0) & (x <= x1)]
    full = float(np.nanmax(y) - np.nanmin(y))
    wf.set_gain(1, 4.0)
    lo, hi = wf.plots[1].getViewBox().viewRange()[1]
    assert hi - lo == pytest.approx(full / 4, rel=1e-3)
    assert (lo + hi) / 2 == pytest.approx(float(np.nanmedian(y)), abs=1e-3 * full)
    assert "×4" in wf.plots[1].getAxis("left").labelText
    assert "×" not in wf.plots[0].getAxis("left").labelText  # the other rows keep their gain
    QTest.keyClick(wf, Qt.Key.Key_Up)
    assert wf.gains == [2.0, 8.0, 2.0]
    _shot(window, screenshot, "gain")
    QTest.keyClick(wf, Qt.Key.Key_0)
    assert wf.gains == [1.0, 1.0, 1.0]


def test_custom_filter_corners_checked_against_nyquist(window, qtbot, load, raw_file, tmp_path, screenshot):
    load(window, [raw_file])
    wf = window.waveform
    with qtbot.waitSignal(window.filtered_shown, timeout=60000) as shown:
        wf.set_custom_band(0.2, 0.8)
    assert shown.args == [(0.2, 0.8)] and wf.display.band == (0.2, 0.8)
    assert wf.low_edit.isVisible() and "0.2–0.8 Hz" in wf.title.text()
    _shot(window, screenshot, "custom_filter")
    # 20 sps: Nyquist is 10 Hz; nothing is requested and the reason is said
    with qtbot.assertNotEmitted(wf.filter_requested), qtbot.waitSignal(wf.filter_invalid) as invalid:
        wf.set_custom_band(0.5, 12.0)
    assert "Nyquist (10 Hz)" in invalid.args[0]
    with qtbot.waitSignal(wf.filter_invalid) as invalid:
        wf.set_custom_band(2.0, 1.0)
    assert "below the high corner" in invalid.args[0]
    with qtbot.waitSignal(window.filtered_shown, timeout=60000) as shown:
        wf.set_custom_band(None, 0.5)  # low-pass: one corner is enough
    assert shown.args == [(None, 0.5)]
    assert window.current_project().parameters["filter"] == "custom:-0.5"
    path = window._write_project(tmp_path / "f.unmix.json")
    window.clear_session()
    wf.set_filter(None)
    with qtbot.waitSignals([window.jobs.job_finished, window.display_shown], timeout=30000):
        window.open_project(path)
    qtbot.waitUntil(lambda: wf.display is not None and wf.display.band == (None, 0.5), timeout=60000)
    assert wf.band() == (None, 0.5)


def test_response_that_does_not_cover_the_record_is_one_error_and_back_to_counts(window, qtbot, load, insight,
                                                                                   errors):
    raw, response = insight / "raw/XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed", insight / RESPONSE
    if not raw.exists() or not response.exists():
        pytest.skip("the 10-sps record or the 02.BH StationXML is missing")
    load(window, [raw])  # location 03, the response file describes 02
    with qtbot.waitSignal(window.filtered_shown, timeout=60000) as shown:
        window.units.set_conversion("VEL", str(response))
    assert shown.args == [None] and window.waveform.display.unit == "counts"
    assert window.units.conversion().identity and window.units.response == str(response)
    assert len(errors) == 1 and "no response for XB.ELYSE.03" in errors[0][1] and "Traceback" not in errors[0][1]
