"""resources/: the application icon (SVG and PNG sizes), desktop entry and AppStream metadata, and their use."""

from __future__ import annotations

import configparser
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"


def test_icon_svg_and_every_png_size(qtbot, tmp_path):
    import importlib.util

    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    from unmix.gui.appicon import ICON_SIZES

    assert QSvgRenderer(str(RESOURCES / "icons" / "unmix.svg")).isValid()
    for n in ICON_SIZES:
        image = QImage(str(RESOURCES / "icons" / f"unmix-{n}.png"))
        assert (image.width(), image.height()) == (n, n) and image.hasAlphaChannel()
    # the committed PNGs are what the script renders from the SVG
    spec = importlib.util.spec_from_file_location("render_icons", ROOT / "packaging" / "render_icons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (fresh,) = module.render(out=tmp_path, sizes=(64,))
    assert QImage(str(fresh)) == QImage(str(RESOURCES / "icons" / "unmix-64.png"))


def test_desktop_entry_and_appstream_metadata_agree():
    from unmix.gui.appicon import APP_ID

    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(RESOURCES / f"{APP_ID}.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Exec"].split()[0] == "unmix-gui"
    assert desktop["Icon"] == "unmix" and desktop["Categories"].endswith(";")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "unmix-gui" in scripts
    meta = ET.parse(RESOURCES / f"{APP_ID}.metainfo.xml").getroot()
    assert meta.tag == "component" and meta.get("type") == "desktop-application"
    assert meta.findtext("id") == APP_ID
    assert meta.find("launchable").text == f"{APP_ID}.desktop"
    assert meta.findtext("project_license") == "MIT" and meta.findtext("metadata_license") == "CC0-1.0"
    assert meta.findtext("name") == desktop["Name"]


def test_installed_package_and_bundle_carry_the_resources():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"]["unmix.gui.resources"] == "resources"
    patterns = tool["package-data"]["unmix.gui.resources"]
    shipped = {p for pattern in patterns for p in RESOURCES.glob(pattern)}
    files = {p for p in RESOURCES.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert files == shipped  # every resource file is package data
    spec = (ROOT / "packaging" / "unmix.spec").read_text()
    assert '(str(ROOT / "resources"), "unmix/gui/resources")' in spec


def test_main_window_uses_the_icon(window):
    from unmix.gui.appicon import resource_path

    assert resource_path("icons/unmix.svg") is not None
    icon = window.windowIcon()
    assert not icon.isNull()
    sizes = {s.width() for s in icon.availableSizes()}
    assert {16, 32, 48, 256} <= sizes
    icon.pixmap(64, 64).save("/tmp/s3/f_icon_64.png")
