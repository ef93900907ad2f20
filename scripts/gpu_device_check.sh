#!/usr/bin/env bash
# The GPU checks of the fast-inference work (README "Performance"), as one short run on a lent CUDA machine
# that has PyTorch and transformers but no network: wheels of the project's other runtime dependencies
# (Python 3.12) may be carried in .whl/. Writes gpu_check.json and the test log to $OUT (default: build/gpu).
#   bash scripts/gpu_device_check.sh [BUDGET_SECONDS]
set -uo pipefail
OUT=${OUT:-build/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
lscpu | grep -m1 "Model name"
# The exactness tests on the GPU (mixed batches take the masked conv path there).
[ -n "${SKIP_TESTS:-}" ] || timeout 150 python3 -m pytest -q -p no:cacheprovider tests/unit/test_structures.py tests/unit/test_worker.py \
    tests/unit/test_precision.py tests/unit/test_batching.py 2>&1 | tee "$OUT/pytest.log" | tail -15
python3 -m ser_tools.gpu_check "$OUT/gpu_check.json" --budget-seconds "${1:-240}" ${GPU_CHECK_ARGS:-} > "$OUT/gpu_check.log" 2>&1
status=$?
python3 - "$OUT/gpu_check.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for name, row in report["profiles"].items():
    rates = " ".join(f"b{b}={r:.0f}" for b, r in row["audio_s_per_s"].items())
    extra = {k: (round(v) if isinstance(v, float) else v) for k, v in row.get("variants_audio_s_per_s", {}).items()}
    print(f"{name:9s} batch-vs-alone {row['batch_vs_alone_max_abs']:.1e} vs-fp32 {row['vs_float32_max_change']:.1e}"
          f" agree {row['vs_float32_argmax_agreement']:.2f} audio-s/s {rates} variants {extra}")
print("decode processes", {k: round(v) for k, v in report.get("decode_audio_s_per_s", {}).items()})
for name, row in report.get("served_path", {}).items():
    print("served", name, row["dtype"], row["precision"]["profile"], round(row["audio_s_per_s_decode_and_model"]),
          f"max change {row['max_change_vs_cpu_float32']:.1e} same top {row['same_top_label']}")
print("skipped", report["skipped"], "seconds", report["seconds"])
PY
exit $status
