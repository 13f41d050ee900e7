#!/usr/bin/env bash
# On a machine with a CUDA GPU and a CUDA-enabled torch: build gentk with its CUDA
# kernels, run the CUDA tests and the GPU benchmarks, and put everything in one folder.
#   bash benchmarks/gpu.sh OUT_DIR        (about 5 minutes on an H100)
# OUT_DIR/ gets: build.log, nvidia-smi.txt, tests.txt, gpu.json (benchmark rows),
# BENCHMARKS.gpu.md (the rendered table). Copy gpu.json to benchmarks/results/ to
# publish it in BENCHMARKS.md.
set -uo pipefail
OUT="${1:?usage: bash benchmarks/gpu.sh OUT_DIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" | tee "$OUT/torch.txt" || exit 1

start=$(date +%s)
MAX_JOBS=${MAX_JOBS:-16} python -m pip install --no-build-isolation -e . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
python -c "import gentk, gentk._extension as e; assert e.has_cuda_kernels(), 'built without CUDA kernels'; print('CUDA kernels loaded')" || exit 1

timeout 240 python -m pytest tests/test_cuda_ops.py tests/test_triton_gaussian_kernels.py tests/test_gaussian_ops.py tests/test_cuda_gumbel_ops.py tests/test_triton_gumbel_kernels.py tests/test_gumbel_ops.py tests/test_cuda_instance_norm.py -q -x \
  2>&1 | tee "$OUT/tests.txt" | tail -5
timeout 300 python -m benchmarks --device cuda --out "$OUT/gpu.json" 2>&1 | tee "$OUT/bench.txt" | tail -40
python - "$OUT" <<'PY'
import json, sys
from benchmarks.harness import render_markdown
out = sys.argv[1]
with open(f"{out}/gpu.json") as f:
    res = json.load(f)
with open(f"{out}/BENCHMARKS.gpu.md", "w") as f:
    f.write(render_markdown([res]))
PY
echo "total: $(( $(date +%s) - start )) s; results in $OUT"
