"""Frozen entry point of ``unmix-gui`` (the desktop application) in the packaged bundle."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import torch  # noqa: F401  (before Qt: importing torch after a QApplication exists can crash)

    from unmix.gui.main import main

    sys.exit(main())
