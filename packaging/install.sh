#!/usr/bin/env bash
# Set up a virtual environment in .venv with Unmix and everything it needs (CPU build of PyTorch by default).
#   UNMIX_TORCH="torch==2.13.0"   the PyTorch requirement installed first; a CUDA user sets e.g.
#                                 UNMIX_TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
#   UNMIX_EXTRAS="gui,dev"        optional dependency groups (gui: PySide6 + pyqtgraph; dev: pytest, ruff)
#   PYTHON=python3                the interpreter the environment is made from (≥ 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${UNMIX_TORCH:-torch==2.13.0}
EXTRAS=${UNMIX_EXTRAS:-gui,dev}

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Unmix needs Python ≥ 3.11")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
# torch first: a bare "torch" requirement resolved later would pull several GB of CUDA wheels
# shellcheck disable=SC2086
"${PIP[@]}" install -q $TORCH
"${PIP[@]}" install -q -e ".[${EXTRAS}]"
.venv/bin/python -c 'import torch, obspy, unmix; print(f"unmix {unmix.__version__} installed (torch {torch.__version__}, obspy {obspy.__version__})")'
