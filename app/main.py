"""Entry point of ``unmix-gui [FILES]``: files, folders or a project file to open at start."""

from __future__ import annotations

import sys
import traceback


def main(argv: list[str] | None = None) -> int:
    """Start the desktop application; returns the exit status."""
    try:
        import pyqtgraph  # noqa: F401
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print("error: the GUI needs PySide6 and pyqtgraph: pip install 'unmix[gui]'", file=sys.stderr)
        return 2
    argv = list(sys.argv if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv[1:]):
        print("usage: unmix-gui [FILES…]\n\nOpen waveform files, folders or an Unmix project (*.unmix.json).")
        return 0
    from unmix.allocator import tune_allocator

    tune_allocator()
    app = QApplication.instance() or QApplication(argv)
    from unmix.gui.appicon import APP_ID, app_icon

    app.setWindowIcon(app_icon())
    app.setDesktopFileName(APP_ID)  # Wayland/X11 match the window to the installed desktop entry
    window = create_window(argv[1:])
    _install_excepthook(window)
    window.show()
    return app.exec()


def _install_excepthook(window) -> None:
    """An exception escaping a slot becomes an error dialog (with the traceback behind "Show Details…")."""
    from unmix.errors import UnmixError
    from unmix.gui.views.dialogs import show_error

    def hook(exc_type, exc, tb) -> None:
        sys.__excepthook__(exc_type, exc, tb)
        message = exc.message if isinstance(exc, UnmixError) else f"{exc_type.__name__}: {exc}"
        details = "" if isinstance(exc, UnmixError) else "".join(traceback.format_exception(exc_type, exc, tb))
        show_error(window, "Unexpected error", message, details)

    sys.excepthook = hook


def create_window(paths: list[str] | None = None):
    """Configure the application (names, pyqtgraph options) and build the main window, opening ``paths``."""
    import pyqtgraph as pg
    from PySide6.QtCore import QCoreApplication

    from unmix.gui.main_window import MainWindow
    from unmix.gui.settings import APPLICATION, ORGANISATION

    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    window = MainWindow()
    if paths:
        window.open_paths(paths)
    return window


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
