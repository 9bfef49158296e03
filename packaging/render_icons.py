"""Render resources/icons/unmix.svg to the PNG sizes desktops and the bundle use (resources/icons/unmix-N.png).

Run after editing the SVG: ``QT_QPA_PLATFORM=offscreen python packaging/render_icons.py`` (the PNGs are committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(svg: Path = ICONS / "unmix.svg", out: Path = ICONS, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Write ``unmix-N.png`` for every size N (square, transparent background); returns the paths."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"error: {svg} is not a valid SVG")
    written = []
    for n in sizes:
        image = QImage(n, n, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        path = out / f"unmix-{n}.png"
        if not image.save(str(path)):
            raise SystemExit(f"error: cannot write {path}")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in render():
        print(p.relative_to(ROOT))
