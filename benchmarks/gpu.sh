#!/usr/bin/env bash
# On a machine with a CUDA GPU and a CUDA-enabled torch (no package index needed: torch,
# triton, numpy, pybind11, ninja and cmake must be there): build gentk with its CUDA kernels,
# run every CUDA-marked test, `gentk selftest` and the GPU benchmarks; everything in OUT_DIR.
#   bash benchmarks/gpu.sh OUT_DIR        (budget: under 10 minutes in all)
# OUT_DIR/ gets: nvidia-smi.txt, torch.txt, build.log, tests.txt, selftest.txt (+ the verdict
# JSON), bench.txt, gpu.json (benchmark rows, with achieved bandwidth as a percentage of the
# measured device-to-device copy) and BENCHMARKS.gpu.md. Copy gpu.json to
# benchmarks/results/ to publish it in BENCHMARKS.md. After the build, each stage runs even when an earlier
# one failed (its status is in summary.txt), so one run shows everything.
set -uo pipefail
OUT="$(mkdir -p "${1:?usage: bash benchmarks/gpu.sh OUT_DIR}" && cd "$1" && pwd)"
cd "$(dirname "$0")/.."
start=$(date +%s)
summary="$OUT/summary.txt"
: > "$summary"
stage() {  # stage NAME TIMEOUT_S CMD...: run, tee to OUT/NAME.txt, record status and seconds
  local name=$1 limit=$2 t0=$(date +%s); shift 2
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - t0 )) s" | tee -a "$summary"
  tail -25 "$OUT/$name.txt"
  return $rc
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch, sys; assert torch.cuda.is_available(), 'no CUDA device'; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
  | tee "$OUT/torch.txt" || exit 1

MAX_JOBS=${MAX_JOBS:-16} stage build 180 python -m pip install --no-build-isolation --no-deps -e . || exit 1
python -c "import gentk._extension as e; assert e.has_cuda_kernels(), 'built without CUDA kernels: ' + str(e.load_error())" || exit 1

GENTK_SELFTEST=0 stage tests 120 python -m pytest tests -m cuda -q --maxfail=20 -p no:cacheprovider
XDG_CACHE_HOME="$OUT/cache" stage selftest 180 python -m gentk.cli selftest --device cuda
cp "$OUT"/cache/gentk/selftest-*.json "$OUT/" 2>/dev/null
stage bench 120 python -m benchmarks --device cuda --quick --out "$OUT/gpu.json"
python - "$OUT" <<'PY'
import json, sys
from benchmarks.harness import render_markdown
out = sys.argv[1]
with open(f"{out}/gpu.json") as f:
    res = json.load(f)
with open(f"{out}/BENCHMARKS.gpu.md", "w") as f:
    f.write(render_markdown([res]))
PY
echo "total: $(( $(date +%s) - start )) s; results in $OUT" | tee -a "$summary"
