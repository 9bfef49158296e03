"""Result views' axes: titles, the 00/24 ends of the LMST hour axis, detrended aligned windows."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui


def _drawn_tick_texts(axis) -> list[str]:
    """The tick labels the axis would paint now (pyqtgraph drops those it considers overlapping)."""
    from PySide6.QtGui import QImage, QPainter

    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _rect, _flags, text in specs[2]] if specs else []


def test_lmst_histograms_have_titles_and_both_ends_of_the_sol(qtbot, screenshot):
    from unmix.gui.views.results import HistogramView

    view = HistogramView()
    qtbot.addWidget(view)
    counts = np.random.default_rng(0).integers(0, 20, size=(5, 24))
    view.set_data(np.arange(25.0), counts, " at scale 1024")
    view.resize(900, 500)
    view.show()
    qtbot.waitExposed(view)
    qtbot.wait(50)
    cols = view.graphics.ci.layout.columnCount()
    for i, plot in enumerate(view.plots):
        texts = _drawn_tick_texts(plot.getAxis("bottom"))
        assert "00" in texts and "24" in texts, texts
        if i + cols >= len(view.plots):
            assert plot.getAxis("bottom").labelText == "LMST hour"
        if i % cols == 0:
            assert plot.getAxis("left").labelText == "% of windows"
    screenshot(view, "results_time_of_day_axes")


def test_aligned_windows_are_detrended_and_titled(qtbot, screenshot):
    from unmix.gui.tasks import AlignedSet
    from unmix.gui.views.results import AlignedView

    view = AlignedView()
    qtbot.addWidget(view)
    t = np.arange(4096) / 20.0
    rng = np.random.default_rng(2)
    wiggle = np.sin(2 * np.pi * t / 20.0)
    drift = 50.0 * (t / t[-1])  # coarse scale: the drift is 50× the signal
    members = wiggle + drift + rng.normal(size=(6, 3, t.size)) * 0.1
    view.set_data({0: AlignedSet(t, members, members.mean(axis=0))}, ["U", "V", "W"], " at scale 4096")
    view.resize(700, 360)
    view.show()
    for curve in view.plots[0].listDataItems():
        _x, y = curve.getOriginalDataset()
        slope = np.polyfit(t, y, 1)[0]
        assert abs(slope * t[-1]) < 0.05 and np.ptp(y) < 5.0  # the wiggle, not the drift
    assert view.plots[0].getAxis("bottom").labelText == "time (s)"
    assert view.plots[0].getAxis("left").labelText.startswith("amplitude")
    assert "trend removed" in view.status.text()
    screenshot(view, "results_aligned_axes")
