#!/usr/bin/env bash
# Run a built bundle's self-test as an analyst's machine would: empty environment (env -i), PATH=/usr/bin:/bin,
# no PYTHONHOME/PYTHONPATH, from an empty directory, with `python`/`python3` on the PATH replaced by traps that
# record any call. Fails if the self-test fails, if the GUI executable does not start or dies within 20 s, if
# `unmix separate` (template, hybrid) fails on the real S0235b record (when the shared data are there), or if a
# trap was hit.
#   usage: packaging/selftest_bundle.sh BUNDLE_DIR [REPORT_DIR]
set -euo pipefail
BUNDLE=$(cd "${1:?usage: selftest_bundle.sh BUNDLE_DIR [REPORT_DIR]}" && pwd)
REPORT=${2:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/unmix-selftest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/trap" "$WORK/run" "$WORK/home"
for name in python python3 python3.11 python3.12 python3.13 python3.14; do
    printf '#!/bin/sh\necho "$0 $*" >> "%s/python-called"\nexit 97\n' "$WORK" > "$WORK/trap/$name"
    chmod +x "$WORK/trap/$name"
done
run() {
    (cd "$WORK/run" && env -i PATH="$WORK/trap:/usr/bin:/bin" HOME="$WORK/home" LANG=C.UTF-8 \
        QT_QPA_PLATFORM=offscreen "$@")
}
status=0
run "$BUNDLE/unmix" --version || status=1
run "$BUNDLE/unmix-gui" --help >/dev/null || { echo "[selftest] unmix-gui does not start" >&2; status=1; }
# The desktop program itself, offscreen: it must still be running (not crashed) when stopped after 20 s.
gui_status=0
run timeout 20 "$BUNDLE/unmix-gui" >"$WORK/gui.log" 2>&1 || gui_status=$?
if [ "$gui_status" = 124 ]; then
    echo "[selftest] unmix-gui ran for 20 s without error"
else
    echo "[selftest] unmix-gui exited with status $gui_status:" >&2
    tail -20 "$WORK/gui.log" >&2
    status=1
fi
run "$BUNDLE/unmix" --self-test --self-test-out "$WORK/run/selftest" || status=1
# What users do with real data: deglitch the raw S0235b record with the template and hybrid methods (ObsPy's signal
# and imaging modules, their data files). UNMIX_BUNDLE_RECORD chooses the file; default: the shared InSight copy,
# when there is one (skipped, and said so, when there is none).
SHARED=${UNMIX_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
RECORD=${UNMIX_BUNDLE_RECORD:-$SHARED/data/insight/raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed}
if [ -f "$RECORD" ]; then
    for method in template hybrid; do
        extra=()
        [ "$method" = hybrid ] && extra=(--hybrid-opt residual=none)
        t0=$(date +%s)
        if run "$BUNDLE/unmix" separate "$RECORD" --out "$WORK/run/separate-$method" --method "$method" "${extra[@]}" \
                >"$WORK/separate.log" 2>&1 && ls "$WORK/run/separate-$method"/*.provenance.json >/dev/null 2>&1; then
            echo "[selftest] separate --method $method $(basename "$RECORD"): ok in $(( $(date +%s) - t0 )) s"
        else
            echo "[selftest] separate --method $method $(basename "$RECORD") FAILED:" >&2
            tail -5 "$WORK/separate.log" >&2
            status=1
        fi
    done
else
    echo "[selftest] no real record at $RECORD: separate on real data not checked (set UNMIX_BUNDLE_RECORD)"
fi
if [ -e "$WORK/python-called" ]; then
    echo "[selftest] the bundle called a Python from the PATH:" >&2
    cat "$WORK/python-called" >&2
    status=1
fi
if [ -n "$REPORT" ]; then
    rm -rf "$REPORT" && mkdir -p "$REPORT"
    cp -r "$WORK/run/selftest/." "$REPORT/" 2>/dev/null || true
fi
[ "$status" = 0 ] && echo "[selftest] bundle self-test passed" || echo "[selftest] bundle self-test FAILED" >&2
exit "$status"
