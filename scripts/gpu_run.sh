#!/usr/bin/env bash
# Everything that needs the GPU, in one prepared run (issue 9). Results go to $OUT (default ./gpu_out).
#
# Before, on a CPU machine (searches need no GPU):
#   bash ../shared/tools/halide_gpu_bundle.sh        # .gpu_bundle/halide-cp312.tar.xz (halide for py3.12)
#   python3 bench/gpu_bench.py prepare --top 8 --diverse 28   # bench/results/gpu_candidates.json + pylib
#   autoschedule collect --prepare .gpu_bundle/gpu_collect.jsonl.gz --pipelines 120 \
#       --schedules-per-pipeline 12 --target host-cuda-cuda_capability_80   # GPU training schedules
# On the GPU machine, from the repository root:
#   OUT=/some/dir bash scripts/gpu_run.sh
#
# Steps: unpack halide (when this Python has none) and the pure-Python helpers, record the device,
# check the least a run needs (scripts/gpu_smoke.py; stop on failure), time our CUDA schedules
# against Anderson2021 / Li2018 / Mullapudi2016 / PyTorch (bench/gpu_bench.py run), the CLI end to
# end (autoschedule run --benchmark-top 4), measure the prepared training schedules (collect
# --prepared) until the time left for the GPU tests (pytest -m gpu). GPU_TOTAL_S is the run's budget;
# GPU_TOP, GPU_BENCH_DEADLINE, GPU_BENCH_TIMEOUT, GPU_SKIP_CLI, GPU_SKIP_TESTS, GPU_TEST_RESERVE_S
# and GPU_BUILD_WORKERS tune the steps. Without a GPU every step says so and the script exits 0.
# The two runs of 2026-11-27 (H200): GPU_TOTAL_S=500, then GPU_TOTAL_S=370 GPU_TOP=64
# GPU_BENCH_DEADLINE=250 GPU_BENCH_TIMEOUT=320 GPU_SKIP_CLI=1 GPU_SKIP_TESTS=1 GPU_TEST_RESERVE_S=15.
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

T0=$SECONDS
TOTAL=${GPU_TOTAL_S:-520}   # the whole run's budget in seconds; each step's deadline comes out of it
left() { echo $((TOTAL - (SECONDS - T0))); }
if ! nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; then
  echo "# no CUDA GPU (nvidia-smi failed): nothing was measured"
fi
# 1. the least a run needs; on failure nothing else is worth the lease
if ! timeout 90 python3 scripts/gpu_smoke.py; then
  echo "# smoke check failed: stopping after $((SECONDS - T0)) s"
  exit 1
fi
TARGET=$(python3 -c "from autoscheduler.measure import cuda_target; print(cuda_target())")
echo "# measuring for $TARGET ($((SECONDS - T0)) s)"

# 2. our schedules vs Halide's GPU autoschedulers and PyTorch (json rewritten after each workload)
timeout "${GPU_BENCH_TIMEOUT:-230}" python3 bench/gpu_bench.py run --out-dir "$OUT" --target "$TARGET" \
  --top "${GPU_TOP:-16}" --deadline-s "${GPU_BENCH_DEADLINE:-150}" ${GPU_BENCH_ARGS:-}
bench_rc=$?
echo "# bench exit $bench_rc ($((SECONDS - T0)) s)"

# 3. the CLI end to end on the GPU: search, measure the 4 best predicted, keep the fastest
if [ -z "${GPU_SKIP_CLI:-}" ]; then
  timeout 60 python3 -m autoscheduler.cli run conv_layer --target "$TARGET" --benchmark-top 4 --time-budget 20
  echo "# autoschedule run exit $? ($((SECONDS - T0)) s)"
fi

# 4. training data for the GPU cost model: schedules drawn on a CPU machine (collect --prepare),
#    measured until the time left for the tests
if [ -f .gpu_bundle/gpu_collect.jsonl.gz ]; then
  deadline=$(( $(left) - ${GPU_TEST_RESERVE_S:-130} )); [ "$deadline" -lt 20 ] && deadline=20
  timeout $((deadline + 40)) python3 -m autoscheduler.cli collect --prepared .gpu_bundle/gpu_collect.jsonl.gz \
    --target "$TARGET" --db "$OUT/gpu_samples.sqlite" --deadline "$deadline" \
    --build-workers "${GPU_BUILD_WORKERS:-14}" --builds-per-phase 4 --n-samples 3 --min-sample-s 0.01 \
    --build-timeout 60 --run-timeout 20 --quiet
  echo "# collect exit $? ($((SECONDS - T0)) s)"
else
  echo "# no .gpu_bundle/gpu_collect.jsonl.gz: no training data collected"
fi

if [ -n "${GPU_SKIP_TESTS:-}" ]; then
  echo "# GPU tests skipped (GPU_SKIP_TESTS)"
elif python3 -c "import pytest" 2>/dev/null; then
  # 5. the GPU tests of the CUDA search space, the measurement layer and tuning (other test modules
  #    need packages a GPU machine may lack, e.g. ray)
  t=$(left); [ "$t" -lt 40 ] && t=40
  timeout "$t" python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_cuda_states.py \
    tests/test_measure.py tests/test_tune.py > "$OUT/pytest_gpu.txt" 2>&1
  echo "# pytest -m gpu: exit $? ($(tail -n 1 "$OUT/pytest_gpu.txt")) ($((SECONDS - T0)) s)"
else
  echo "# pytest is not importable here (no .gpu_bundle/pylib.tar.gz?): GPU tests not run"
fi
echo "# done in $((SECONDS - T0)) s; bench exit $bench_rc"
exit $bench_rc
