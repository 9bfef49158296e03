"""Several records stacked in the browser (#17): with "All records" on, the rows of every loaded record, each
record tagged with its key, on one linked time axis (the shown record's time origin); off: the shown record only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.gui.test_waveform_speed import T0, make_display  # noqa: E402

pytestmark = pytest.mark.gui

LATER = 1800.0  # the second record starts half an hour after the first


@pytest.fixture
def two(qtbot):
    """A browser showing record A with records A and B (another station, starting LATER s after A) loaded."""
    import pyqtgraph as pg

    from unmix.gui.views.waveform import WaveformView

    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    qtbot.waitExposed(view)
    a = make_display("ELYSE", T0, 2 * 3600.0, seed=1)
    b = make_display("ELYHK", T0 + LATER, 2 * 3600.0, seed=2)
    view.set_display(a)
    view.set_records({a.key: a, b.key: b})
    return view, a, b


def _tags(view) -> list[str]:
    return [row.tag.text.text() for row in view.rows if row.tag is not None]


def test_toggle_needs_two_records(qtbot):
    from unmix.gui.views.waveform import WaveformView

    view = WaveformView()
    qtbot.addWidget(view)
    a = make_display()
    view.set_display(a)
    view.set_records({a.key: a})
    assert not view.stack_check.isEnabled()
    view.set_stacked(True)
    assert not view.stacked and len(view.rows) == 3  # one record: nothing to stack


def test_two_records_stacked_on_one_time_axis(two, qtbot, screenshot):
    view, a, b = two
    assert view.stack_check.isEnabled() and len(view.rows) == 3
    with qtbot.waitSignal(view.stack_changed):
        view.stack_check.setChecked(True)
    assert view.stacked
    assert [(r.display.key, r.component) for r in view.rows] == [(k, c) for k in (a.key, b.key) for c in "UVW"]
    tags = _tags(view)
    assert len(tags) == 2 and tags[0].startswith(f"{a.key}  [counts]   (selected") and tags[1] == f"{b.key}  [counts]"
    assert "+ 1 other record stacked" in view.title.text()
    # the overlays' rows stay those of the shown record
    assert view.plots == [r.plot for r in view.rows[:3]] and len(view.curves) == len(view.gains) == 3
    # one visible time axis, under the last row (B's W); every row on the same x range
    assert [r.plot.getAxis("bottom").isVisible() for r in view.rows] == [False] * 5 + [True]
    assert view.bottom_axis().labelText.startswith("UTC  2019-07-26")
    qtbot.wait(30)  # the new rows are laid out
    view.set_x_range(LATER - 600.0, LATER + 600.0)
    view.refresh()
    for r in view.rows:
        assert r.plot.getViewBox().viewRange()[0] == pytest.approx([LATER - 600.0, LATER + 600.0])
    # B is drawn at its own time on A's axis: its first sample at LATER s after A's
    xb, yb = view.rows[3].curve.getData()
    assert xb[np.isfinite(yb)].min() == pytest.approx(LATER, abs=1.0)  # a min/max block's centre
    xa, _ya = view.rows[0].curve.getData()
    assert xa.min() < LATER - 600.0
    screenshot(view, "waveform_two_records_stacked")
    # back to the shown record alone
    view.stack_check.setChecked(False)
    assert not view.stacked and len(view.rows) == 3 and _tags(view) == []
    assert {r.display.key for r in view.rows} == {a.key}
    assert view.x_range() == pytest.approx((LATER - 600.0, LATER + 600.0))
    assert view.bottom_axis().isVisible() and view.plots[-1].getAxis("left").labelText == "BHW [counts]"


def test_stacked_follows_the_shown_record_and_gains(two):
    view, a, b = two
    view.set_stacked(True)
    view.set_display(b)  # the owner shows B: B's rows are the shown ones, A is shifted back
    assert view.plots == [r.plot for r in view.rows[3:]]
    assert _tags(view)[1].startswith(f"{b.key}  [counts]   (selected")
    assert view.rows[0].shift == pytest.approx(-LATER) and view.rows[3].shift == 0.0
    view.reset()
    x, y = view.rows[0].curve.getData()
    assert x[np.isfinite(y)].min() == pytest.approx(-LATER, abs=1.0)
    view.scale_gain(2.0)  # every row, stacked ones too
    assert view.gains == [2.0] * 3 and [r.gain for r in view.rows[:3]] == [2.0] * 3
    assert [r.plot.getAxis("left").labelText for r in view.rows[:3]] == ["U ×2", "V ×2", "W ×2"]
    view.reset_gain()
    assert view.gains == [1.0] * 3 and [r.gain for r in view.rows[:3]] == [1.0] * 3
    view.set_records({b.key: b})  # A closed: back to one record
    assert not view.stacked and len(view.rows) == 3 and not view.stack_check.isEnabled()


def test_the_main_window_stacks_what_it_loads_and_the_project_keeps_it(window, raw_file, load, qtbot, tmp_path,
                                                                       prefs):
    from unmix.gui.main_window import MainWindow

    other_file = raw_file.parent / "XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"  # another instrument
    if not other_file.exists():
        pytest.skip(f"{other_file} not found")
    load(window, [raw_file])
    assert not window.waveform.stack_check.isEnabled()  # one record: nothing to stack
    load(window, [other_file])
    assert window.waveform.stack_check.isEnabled() and len(window.waveform.records) == 2
    window.waveform.set_stacked(True)
    assert window.waveform.stacked and len(window.waveform.shown_displays()) == 2
    path = window._write_project(tmp_path / "stacked.unmix.json")
    window.clear_session()
    assert not window.waveform.stack_check.isEnabled() and not window.waveform.records
    again = MainWindow(prefs)
    qtbot.addWidget(again)
    again.show()
    again.open_paths([str(path)])
    qtbot.waitUntil(lambda: len(again.waveform.records) == 2, timeout=60000)
    assert again.waveform.stacked
