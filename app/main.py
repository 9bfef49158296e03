"""Entry point of ``unmix-gui``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Start the desktop application (the full browser and pipeline panels arrive with the GUI issue)."""
    try:
        from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
    except ImportError:
        print("error: the GUI needs PySide6 and pyqtgraph: pip install 'unmix[gui]'", file=sys.stderr)
        return 2
    from core import __version__

    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    window = QMainWindow()
    window.setWindowTitle(f"Unmix {__version__}")
    files = argv[1:]
    window.setCentralWidget(QLabel("Files: " + ", ".join(files) if files else "Open InSight records with the CLI for now"))
    window.resize(900, 600)
    window.show()
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
