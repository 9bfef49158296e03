"""The main window fits a 1366×768 laptop; narrow docks elide paths and wrap the log; samples shown with seconds."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui


def test_main_window_fits_a_1366x768_screen(window, qtbot, screenshot):
    from PySide6.QtWidgets import QPlainTextEdit

    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 740, hint
    window.waveform._set_title("<b>XB.ELYSE.02.BH#12</b>   filtered 0.1–1 Hz, a very long title " * 4)
    window.resize(1366, 740)
    qtbot.wait(100)
    assert window.width() == 1366 and window.height() == 740
    assert window.waveform.width() >= 600  # the traces keep most of the screen
    assert window.jobs.log.lineWrapMode() == QPlainTextEdit.LineWrapMode.WidgetWidth
    window.jobs.append_log("Features: /home/analyst/projects/insight/S0235b/results/features-with-a-long-name.h5")
    screenshot(window, "main_window_1366x768")


def test_path_edit_elides_in_the_middle_with_the_path_as_tooltip(qtbot, screenshot):
    from unmix.gui.widgets import ElidedPathEdit

    edit = ElidedPathEdit()
    qtbot.addWidget(edit)
    path = "/home/analyst/projects/insight/S0235b/unmix-results/feature-store-final.h5"
    edit.setPlaceholderText(path)
    edit.resize(160, edit.sizeHint().height())
    edit.show()
    qtbot.waitExposed(edit)
    shown = edit.elided_text()
    assert shown.startswith("/home") and shown.endswith(".h5") and "…" in shown
    assert edit.toolTip() == path
    edit.setText("/short.h5")
    assert edit.elided_text() == "" and edit.toolTip() == "/short.h5"  # fits: drawn by Qt as is
    edit.resize(600, edit.height())
    edit.setText(path)
    assert edit.elided_text() == ""
    edit.resize(160, edit.height())
    screenshot(edit, "pipeline_elided_path")


def test_samples_shown_with_seconds_at_the_record_rate(qtbot):
    from PySide6.QtWidgets import QLineEdit

    from unmix.gui.widgets import SamplesSpinBox, SecondsLabel, current_rate

    box = SamplesSpinBox(256, 2**22, 1024)
    qtbot.addWidget(box)
    assert box.text() == "1024  = 51.2 s"  # no record: 20 sps
    box.set_rate(10.0)
    assert box.text() == "1024  = 102 s" and "102.4 s at 10 sps" in box.toolTip()
    box.setValue(4096)
    assert box.seconds() == pytest.approx(409.6) and box.text().endswith("6.83 min")
    edit = QLineEdit("1024,4096")
    label = SecondsLabel(edit, 10.0)
    assert label.text() == "102 s, 6.83 min @ 10 sps"
    edit.setText("1024, x")
    assert label.text() == ""

    class Win:
        records = {"a": [type("R", (), {"sampling_rate": 10.0})()]}
        current_key = "a"

    assert current_rate(Win()) == 10.0 and current_rate(None) == 20.0


def test_results_scale_combo_uses_the_table_rate(qtbot):
    from unmix.gui.views.results import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_scales((1024, 4096), 10.0)
    assert [panel.scale_combo.itemText(i) for i in range(2)] == ["1024 (102 s)", "4096 (410 s)"]
    panel.set_scales((1024,), None)
    assert panel.scale_combo.itemText(0) == "1024"
