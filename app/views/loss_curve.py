"""Training loss curve: the loss and its terms per epoch, drawn live from a training job's structured progress
(``unmix.gui.tasks.epoch_point``), instead of one log line per step."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

TERM_COLOURS = ("#1f4e99", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")


def epoch_line(point: dict) -> str:
    """The one job-log line of an epoch: ``epoch 3/20: loss 1.23 (rec 1.1, gauss 0.08, cat 0.05), 2.1 s``."""
    terms = dict(point.get("terms", {}))
    loss = terms.pop("loss", None)
    train = [f"{k} {v:.3g}" for k, v in terms.items() if not k.startswith("val_")]
    val = terms.get("val_loss")
    text = f"epoch {point['epoch']}/{point['epochs']}"
    if loss is not None:
        text += f": loss {loss:.4g}"
    if train:
        text += f" ({', '.join(train)})"
    if val is not None:
        text += f", validation {val:.4g}"
    if "seconds" in point:
        text += f", {point['seconds']:.1f} s"
    return text


class LossCurve(QWidget):
    """Loss and its terms against the epoch; validation terms dashed. :meth:`add` one epoch, :meth:`clear`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.epochs: list[int] = []
        self.values: dict[str, list[float]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.title = QLabel("Training loss")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(140)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMenuEnabled(False)
        self.legend = self.plot.addLegend(offset=(-5, 5), labelTextSize="8pt", brush=(255, 255, 255, 200),
                                          pen="#c0c0c0", colCount=2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)

    def clear(self) -> None:
        self.epochs, self.values = [], {}
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.curves = {}
        self.title.setText("Training loss")

    def add(self, point: dict) -> None:
        """Add one epoch (``{"epoch", "epochs", "terms"}``); a restart from epoch 1 (or earlier) starts over."""
        epoch = int(point["epoch"])
        if self.epochs and epoch <= self.epochs[-1]:
            self.clear()
        n = len(self.epochs)
        self.epochs.append(epoch)
        for name, value in point.get("terms", {}).items():
            series = self.values.setdefault(name, [float("nan")] * n)
            series.append(float(value))
        for name, series in self.values.items():
            if len(series) < len(self.epochs):
                series.append(float("nan"))
            curve = self.curves.get(name)
            if curve is None:
                base = name.removeprefix("val_")
                order = sorted({k.removeprefix("val_") for k in self.values})
                colour = TERM_COLOURS[order.index(base) % len(TERM_COLOURS)]
                pen = pg.mkPen(colour, width=2 if base == "loss" else 1,
                               style=pg.QtCore.Qt.PenStyle.DashLine if name.startswith("val_") else
                               pg.QtCore.Qt.PenStyle.SolidLine)
                # validation terms share their term's colour, dashed, and stay out of the legend (half its size)
                curve = self.plot.plot(pen=pen, symbol="o", symbolSize=4, symbolBrush=colour, symbolPen=None,
                                       name=None if name.startswith("val_") else name)
                self.curves[name] = curve
            curve.setData(self.epochs, series, connect="finite")
        dashed = ", dashed: validation" if any(k.startswith("val_") for k in self.values) else ""
        self.title.setText(f"Training loss: epoch {epoch}/{point.get('epochs', '?')}{dashed}")
