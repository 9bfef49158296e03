"""Application resources (icon, desktop entry, AppStream metadata), installed as ``unmix.gui.resources``.

The folder is the design card's top-level ``resources/``; pyproject maps it into the package so that an installed
wheel finds the icon with :mod:`importlib.resources`, and the PyInstaller spec copies it into the bundle.
"""
