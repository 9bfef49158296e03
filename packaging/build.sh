#!/usr/bin/env bash
# Build the packaged app (Linux): a PyInstaller onedir bundle dist/unmix/ with the executables `unmix` and
# `unmix-gui`, and dist/unmix-<version>-linux-<arch>.tar.gz; then run the bundle's self-test without any Python.
#
#   PYTHON=python3                 interpreter the clean build environment is made from (≥ 3.11, shared libpython)
#   UNMIX_TORCH="torch==2.13.0"    PyTorch requirement installed first; must be a CPU build (checked)
#   UNMIX_PYINSTALLER="pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9"
#   UNMIX_BUNDLE_BUDGET_MB=1100    size budget of the unpacked bundle (MiB); the build fails above it (README)
#   UNMIX_REUSE_VENV=1             keep an existing build/pkg-venv (only the project is reinstalled): for iterating
#                                  on the spec; releases are built from a fresh environment (the default)
#   UNMIX_SKIP_SELFTEST=1          build and measure only
# Prints the build time, the bundle and archive sizes, and the self-test report (in build/selftest/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
TORCH=${UNMIX_TORCH:-torch==2.13.0}
PYINSTALLER=${UNMIX_PYINSTALLER:-pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9}
BUDGET_MB=${UNMIX_BUNDLE_BUDGET_MB:-1100}
VENV=$ROOT/build/pkg-venv
DIST=$ROOT/dist
BUNDLE=$DIST/unmix
t0=$(date +%s)

say() { printf '[build] %s\n' "$*"; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c 'import sys, sysconfig
sys.exit(0 if sys.version_info >= (3, 11) else "Unmix needs Python >= 3.11")
sys.exit(0 if sysconfig.get_config_var("Py_ENABLE_SHARED") else "PyInstaller needs a Python built with --enable-shared")'

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if [ "${UNMIX_REUSE_VENV:-0}" = 1 ] && [ -x "$VENV/bin/python" ]; then
    say "reusing $VENV (UNMIX_REUSE_VENV=1)"
else
    say "clean build environment in $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # torch first: a bare "torch" requirement resolved later would pull several GB of CUDA wheels
    # shellcheck disable=SC2086
    "${PIP[@]}" install $TORCH
    # shellcheck disable=SC2086
    "${PIP[@]}" install $PYINSTALLER
fi
# The project itself, non-editable (the bundle must not point back into the source tree), with the GUI extra only.
"${PIP[@]}" install --force-reinstall --no-deps "$ROOT"
"${PIP[@]}" install "$ROOT[gui]"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sys

import torch

bad = sorted(d.metadata["Name"] for d in md.distributions()
             if d.metadata["Name"].lower().startswith(("nvidia-", "triton", "pyqt5", "pyqt6", "pyside2")))
if torch.version.cuda is not None or bad:
    sys.exit(f"the build environment must hold the CPU build of torch and no CUDA/other-Qt packages "
             f"(torch CUDA {torch.version.cuda}, found {', '.join(bad) or 'none'}); set UNMIX_TORCH")
print(f"[build] torch {torch.__version__} (CPU), python {sys.version.split()[0]}")
PY

say "PyInstaller (onedir) → $BUNDLE"
mkdir -p "$ROOT/build/pyinstaller"
# Run from build/ so that the installed copy of the project, not the source tree, is analysed.
(cd "$ROOT/build" && "$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$DIST" \
    --workpath "$ROOT/build/pyinstaller" "$ROOT/packaging/unmix.spec")
[ -x "$BUNDLE/unmix" ] && [ -x "$BUNDLE/unmix-gui" ] || die "the bundle lacks its executables"

VERSION=$("$VENV/bin/python" -c 'import unmix; print(unmix.__version__)')
ARCHIVE=$DIST/unmix-$VERSION-linux-$(uname -m).tar.gz
say "archive $ARCHIVE"
tar -C "$DIST" -czf "$ARCHIVE.part" unmix && mv "$ARCHIVE.part" "$ARCHIVE"
t1=$(date +%s)

SIZE_MB=$(du -sm "$BUNDLE" | cut -f1)
ARCHIVE_MB=$(du -sm "$ARCHIVE" | cut -f1)
say "build time $((t1 - t0)) s"
say "bundle size ${SIZE_MB} MiB (budget ${BUDGET_MB} MiB), archive ${ARCHIVE_MB} MiB"
say "largest parts:"
du -sm "$BUNDLE"/_internal/* | sort -rn | sed -n '1,8s/^/[build]   /p'  # sed reads everything: no SIGPIPE
[ "$SIZE_MB" -le "$BUDGET_MB" ] || die "bundle is ${SIZE_MB} MiB, over the ${BUDGET_MB} MiB budget"

[ "${UNMIX_SKIP_SELFTEST:-0}" = 1 ] && { say "self-test skipped (UNMIX_SKIP_SELFTEST=1)"; exit 0; }
bash "$ROOT/packaging/selftest_bundle.sh" "$BUNDLE" "$ROOT/build/selftest"
