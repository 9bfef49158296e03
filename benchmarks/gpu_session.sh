#!/usr/bin/env bash
# The GPU measurements recorded in docs/performance.md, as one script for a short lease on a GPU machine:
#   bash benchmarks/gpu_session.sh OUTDIR [STEP...]     (steps: tests scat sep train real cluster bursts
#                                                        glitches)
# Each step has its own time limit, so one slow step does not starve the others. Optional, for a bare machine:
# wheels in .whl/ are installed to /tmp/site, and .devdata/ (a copy of ../shared/data) stands in for ../shared/data.
set -u
OUT=${1:?usage: gpu_session.sh OUTDIR [STEP...]}; shift
STEPS=${*:-tests scat sep train real cluster}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
if [ -d .whl ] && ! python3 -c "import obspy, kymatio, marstime" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
# core/ and app/ are the package unmix (pyproject's package-dir mapping): install it in place when not installed
python3 -c "import unmix" 2>/dev/null || python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . \
  || { echo "cannot install unmix"; exit 1; }
if [ ! -e ../shared/data ] && [ -d .devdata ]; then mkdir -p ../shared && ln -s "$PWD/.devdata" ../shared/data; fi
U="python3 -m unmix.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1

step() {
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit} s) $(date +%T)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "=== $name rc=$? in $((SECONDS - t0)) s"
}

for s in $STEPS; do
  case $s in
    tests) step tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py ;;
    scat) step scat 90 $U bench scattering --device cuda --json "$OUT/scat.json" ;;
    sep)
      step sep64 60 $U bench separation-speed --device cuda --json "$OUT/sep64.json"
      step sep32 40 $U bench separation-speed --device cuda --dtype float32 --json "$OUT/sep32.json" ;;
    train)
      step train-paper 60 $U bench training --preset paper --device cuda --json "$OUT/train.json" ;;
    cluster)
      step synth 60 $U synth --sols 2 --out /tmp/synth
      step features 90 $U features /tmp/synth/mixture.mseed --out /tmp/features.h5 --device cuda
      step clustering 120 $U bench clustering --sols 2 --train-seeds 29 --no-real --device cuda ;;
    real) step real 200 $U bench separation --real --methods scatcov --device cuda --json "$OUT/real.json" ;;
    bursts) step bursts 360 python3 -m benchmarks.burst_variants --device cuda --json "$OUT/bursts.json" ;;
    glitches) step glitches 170 $U bench separation --case glitches --seeds 0,1,2,3,4 --methods scatcov \
                   --device cuda --json "$OUT/glitches.json" ;;
    *) echo "unknown step $s" ;;
  esac
done
