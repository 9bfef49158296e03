"""Figure export of every view (PNG, SVG, PDF: the widget as shown, legends and captions included) and the cluster
table as CSV, with the File > Export menu that offers them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMarginsF, QPoint, QRect, QSize, QSizeF
from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter, QPixmap
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from unmix.atomic import atomic_path
from unmix.errors import ConfigError, UnmixError

FIGURE_FORMATS = {".png": "PNG image (*.png)", ".svg": "SVG vector image (*.svg)", ".pdf": "PDF document (*.pdf)"}
PNG_SCALE = 2
"""PNG pixels per screen pixel: a figure sharp enough for a slide or a report."""


def figure_views(window: Any) -> dict[str, Callable[[], QWidget | None]]:
    """The views a figure can be made of, by menu name: each gives its widget (None when it does not exist)."""
    panel = window.results.panel
    views: dict[str, Callable[[], QWidget | None]] = {
        "Browser": lambda: window.waveform,
        "Spectrogram": lambda: window.spectrogram,
        "Time of day": lambda: panel.histograms,
        "Latent space": lambda: panel.latent,
        "Aligned waveforms": lambda: panel.aligned,
        "Separation": lambda: _scrolled_content(panel.separation),
    }
    jobs = getattr(window, "jobs", None)
    if jobs is not None and getattr(getattr(jobs, "loss_curve", None), "epochs", None):  # after a training
        views["Training loss"] = lambda: jobs.loss_curve
    return views


def _scrolled_content(view: QWidget) -> QWidget:
    """The whole content of a view that scrolls (the separation's rows), not only the part in sight."""
    from PySide6.QtWidgets import QScrollArea

    area = view.findChild(QScrollArea)
    return area.widget() if area is not None and area.widget() is not None else view


def export_widget(widget: QWidget, path: str | Path) -> Path:
    """Write ``widget`` as drawn to ``path``: PNG (at :data:`PNG_SCALE`), SVG or PDF (vector, page the widget's
    size), chosen by the suffix; written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ConfigError(f"a figure must end in {', '.join(FIGURE_FORMATS)}, got {path.name!r}")
    widget.ensurePolished()
    size = widget.size()
    if size.width() < 2 or size.height() < 2:
        raise ConfigError("this view has no size yet: show it first", path)
    with atomic_path(path) as tmp:
        {".png": _png, ".svg": _svg, ".pdf": _pdf}[suffix](widget, size, tmp)
    return path


def _png(widget: QWidget, size: QSize, tmp: Path) -> None:
    pixmap = QPixmap(size * PNG_SCALE)
    pixmap.setDevicePixelRatio(PNG_SCALE)
    pixmap.fill(widget.palette().window().color())
    QWidget.render(widget, pixmap)  # the widget as shown (QGraphicsView.render would draw its scene only)
    if not pixmap.save(str(tmp), "PNG"):
        raise ConfigError("could not write the PNG image", tmp)


def _svg(widget: QWidget, size: QSize, tmp: Path) -> None:
    from PySide6.QtSvg import QSvgGenerator

    gen = QSvgGenerator()
    gen.setFileName(str(tmp))
    gen.setSize(size)
    gen.setViewBox(QRect(QPoint(0, 0), size))
    gen.setTitle(widget.windowTitle() or type(widget).__name__)
    gen.setDescription("exported by Unmix")
    painter = QPainter(gen)
    try:
        QWidget.render(widget, painter, QPoint(0, 0))
    finally:
        painter.end()


def _pdf(widget: QWidget, size: QSize, tmp: Path) -> None:
    writer = QPdfWriter(str(tmp))
    writer.setResolution(72)  # one widget pixel per PDF point
    writer.setPageLayout(QPageLayout(QPageSize(QSizeF(size.width(), size.height()), QPageSize.Unit.Point),
                                     QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
    writer.setCreator("Unmix")
    painter = QPainter(writer)
    try:
        QWidget.render(widget, painter, QPoint(0, 0))
    finally:
        painter.end()


# --- menu -------------------------------------------------------------------------------------------------------------


def _ask_path(window: Any, title: str, name: str, filters: str) -> str:
    start = str(Path(window.preferences.last_dir or Path.home()) / name)
    path, chosen = QFileDialog.getSaveFileName(window, title, start, filters)
    if path and not Path(path).suffix:
        path += next((s for s, f in FIGURE_FORMATS.items() if f == chosen), ".png")
    return path


def export_view(window: Any, name: str, path: str | None = None) -> Path | None:
    """Export the view ``name`` (see :func:`figure_views`), asking for the file when ``path`` is None; a failure is
    one message."""
    from unmix.gui.views.dialogs import show_error

    widget = figure_views(window)[name]()
    if widget is None:
        window.statusBar().showMessage(f"{name}: nothing to export", 5000)
        return None
    if path is None:
        path = _ask_path(window, f"Export figure: {name}", name.lower().replace(" ", "_") + ".png",
                         ";;".join(FIGURE_FORMATS.values()))
        if not path:
            return None
    try:
        written = export_widget(widget, path)
    except (UnmixError, OSError) as exc:
        show_error(window, "Cannot export the figure", getattr(exc, "message", None) or str(exc))
        return None
    window.statusBar().showMessage(f"{name} exported to {written}", 5000)
    return written


def export_table_csv(window: Any, path: str | None = None) -> Path | None:
    """Save the current cluster table as CSV (times, clusters, confidences of every window and scale)."""
    from unmix.gui.views.dialogs import show_error

    table = window.results.table
    if table is None:
        window.statusBar().showMessage("no cluster table yet: run Cluster first (or open a project)", 5000)
        return None
    if path is None:
        path = _ask_path(window, "Export cluster table (CSV)", "clusters.csv", "CSV table (*.csv)")
        if not path:
            return None
        if not path.lower().endswith(".csv"):
            path = str(Path(path).with_suffix(".csv"))
    try:
        written = table.save(path, overwrite=True)
    except (UnmixError, OSError) as exc:
        show_error(window, "Cannot export the cluster table", getattr(exc, "message", None) or str(exc))
        return None
    window.statusBar().showMessage(f"cluster table exported to {written}", 5000)
    return written


def install_export_menu(window: Any, menu: QMenu) -> QMenu:
    """File > Export: one "figure" action per view (the list is built when the menu opens) and the table as CSV."""
    sub = menu.addMenu("E&xport figure")

    def fill() -> None:
        sub.clear()
        for name in figure_views(window):
            sub.addAction(f"{name}…").triggered.connect(lambda _c=False, n=name: export_view(window, n))

    sub.aboutToShow.connect(fill)
    fill()
    menu.addAction("Export cluster table (&CSV)…").triggered.connect(lambda _c=False: export_table_csv(window))
    return sub
