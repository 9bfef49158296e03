"""Figure export of every view (PNG, SVG, PDF) and the cluster table as CSV (#17)."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui


def _table(record, n_clusters: int = 3, scale: int = 1024, rate: float = 20.0):
    """Windows of ``scale`` samples every half window over ``record``, clusters in blocks of 6."""
    from unmix.clusters import ClusterTable
    from unmix.mars_time import sol_float

    t0, length = record.starttime.timestamp, scale / rate
    starts = t0 + np.arange(0, record.endtime.timestamp - t0 - length, length / 2)
    n = len(starts)
    iv = np.stack([starts, starts + length], -1)[:, None, :]
    cluster = ((np.arange(n) // 6) % n_clusters).astype(np.int16)[:, None]
    prob = np.full((n, 1, n_clusters), 0.1, np.float32)
    prob[np.arange(n), 0, cluster[:, 0]] = 0.8
    latent = (np.random.default_rng(0).normal(size=(n, 1, 4)) + cluster[..., None] * 3.0).astype(np.float32)
    return ClusterTable((scale,), iv, sol_float(iv), cluster, prob.max(-1), prob, latent,
                        meta={"sampling_rate": rate})


def _check(path):
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    elif path.suffix == ".svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert len(list(root.iter())) > 20  # drawn content, not an empty page
    else:
        assert data[:5] == b"%PDF-" and b"%%EOF" in data[-1024:]


def test_every_view_exports_png_svg_pdf_and_the_table_csv(window, qtbot, tmp_path, monkeypatch, errors):
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    from unmix.gui.export_figure import PNG_SCALE, export_table_csv, export_view, export_widget, figure_views
    from unmix.gui.tasks import separate_record

    with qtbot.waitSignals([window.jobs.job_finished, window.spectrogram_shown], timeout=30000):
        window.generate_synthetic(hours=1.0, seed=4, start_sol=210)
    key = window.current_key
    table = _table(window.records[key][0])
    with qtbot.waitSignal(window.results.products_shown, timeout=30000):
        window.results.set_table(table)
    separated = separate_record(window.records[key][0].stream, "highpass", {"freq": 0.05}, key=key)
    window.results.separation_done(separated)
    qtbot.wait(50)

    names = list(figure_views(window))
    assert {"Browser", "Spectrogram", "Time of day", "Latent space", "Aligned waveforms", "Separation"} <= set(names)
    for name in names:
        for suffix in (".png", ".svg", ".pdf"):
            path = export_view(window, name, str(tmp_path / f"{name.replace(' ', '_')}{suffix}"))
            assert path is not None and path.is_file(), (name, suffix, errors)
            _check(path)
    browser = tmp_path / "Browser.png"
    image = QImage(str(browser))
    assert image.width() == PNG_SCALE * window.waveform.width()
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 10  # traces, axes and spans drawn, not a blank page

    # the menu: a file dialog answer without suffix gets the chosen format's
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "menu_fig"), "SVG vector image (*.svg)"))
    sub = window.export_menu
    sub.aboutToShow.emit()
    action = next(a for a in sub.actions() if a.text() == "Spectrogram…")
    action.trigger()
    _check(tmp_path / "menu_fig.svg")

    written = export_table_csv(window, str(tmp_path / "clusters.csv"))
    with open(written, newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == table.n_windows + 1  # a header and one row per window
    assert [int(r[rows[0].index(next(h for h in rows[0] if "cluster" in h))]) for r in rows[1:]] == \
        table.cluster[:, 0].tolist()

    with pytest.raises(Exception, match=r"\.png, \.svg, \.pdf"):
        export_widget(window.waveform, tmp_path / "figure.jpg")
    assert errors == []
