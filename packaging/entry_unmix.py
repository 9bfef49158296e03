"""Frozen entry point of ``unmix`` (the command line) in the packaged bundle."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # Dask/multiprocessing workers re-enter this executable
    from unmix.cli import main

    sys.exit(main())
