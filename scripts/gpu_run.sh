#!/usr/bin/env bash
# Everything that needs the GPU, in one prepared run (issue 9). Results go to $OUT (default ./gpu_out).
#
# Before, on a CPU machine (searches need no GPU):
#   bash ../shared/tools/halide_gpu_bundle.sh        # .gpu_bundle/halide-cp312.tar.xz (halide for py3.12)
#   python3 bench/gpu_bench.py prepare               # bench/results/gpu_candidates.json + .gpu_bundle/pylib.tar.gz
# On the GPU machine, from the repository root:
#   OUT=/some/dir bash scripts/gpu_run.sh
#
# Steps: unpack halide (when this Python has none) and the pure-Python helpers, record the device,
# time our CUDA schedules against Anderson2021 / Li2018 / Mullapudi2016 / PyTorch (bench/gpu_bench.py
# run), then run the GPU tests (pytest -m gpu). Without a GPU
# every step says so and the script exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_run.log"
exec > >(tee -a "$LOG") 2>&1
echo "# gpu_run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT, results in $OUT"

SITE=${GPU_SITE:-/tmp/gpu_site}
PYLIB=${GPU_PYLIB:-/tmp/gpu_pylib}
if ! python3 -c "import halide" 2>/dev/null; then
  if [ -f .gpu_bundle/halide-cp312.tar.xz ]; then
    mkdir -p "$SITE" && tar xJf .gpu_bundle/halide-cp312.tar.xz -C "$SITE"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "# no halide here and no .gpu_bundle/halide-cp312.tar.xz: run ../shared/tools/halide_gpu_bundle.sh first"
    exit 2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -f .gpu_bundle/pylib.tar.gz ]; then
  # flatbuffers, tqdm, pytest: appended, so the machine's own packages win
  mkdir -p "$PYLIB" && tar xzf .gpu_bundle/pylib.tar.gz -C "$PYLIB"
  export PYTHONPATH="$PYTHONPATH:$PYLIB"
fi
python3 -c "import halide, sys; print('# halide', halide.__file__, 'python', sys.version.split()[0])"

if ! nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; then
  echo "# no CUDA GPU (nvidia-smi failed): nothing was measured"
fi
python3 bench/gpu_bench.py run --out-dir "$OUT" ${GPU_BENCH_ARGS:-}
bench_rc=$?

if python3 -c "import pytest" 2>/dev/null; then
  # the GPU tests of the CUDA search space and of the measurement layer (other test modules need
  # packages a GPU machine may lack, e.g. ray)
  python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_cuda_states.py tests/test_measure.py \
    > "$OUT/pytest_gpu.txt" 2>&1
  echo "# pytest -m gpu: exit $? ($(tail -n 1 "$OUT/pytest_gpu.txt"))"
else
  echo "# pytest is not importable here (no .gpu_bundle/pylib.tar.gz?): GPU tests not run"
fi
echo "# done; bench exit $bench_rc"
exit $bench_rc
