#!/bin/bash
# The worst-engine temperature rule on the adopted synth3-e6 folds: recompute the five-fold summary (no fold is
# retrained: each finished fold is reused), fold the new T into models/demo in place, evaluate it as
# `make evaluate-demo` does, and run the independent check beside the model as committed before (T 1.442).
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-calibration-worst-engine
BEFORE=${BEFORE:-8d5dc4b}  # main before this change: models/demo with the pooled-NLL T
$P -m ser_train.logo --data build/data-ab --holdout espeak-ng flite festival hts accented --out build/logo-a3e6
$P -m ser_train.calibrate --model-dir models/demo --logo-summary build/logo-a3e6/summary.json
cp build/logo-a3e6/summary.{json,md} models/demo/eval/logo/
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir models/demo --out models/demo/eval/synth
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --model-dir models/demo --out models/demo/eval/all
mkdir -p build/demo-pooled-t build/tts-check-worst
for f in config.json preprocessor_config.json model.safetensors training_log.json; do
  git show $BEFORE:models/demo/$f > build/demo-pooled-t/$f; done
# The rendered set is deterministic; reuse the one the adoption rendered when it is there.
[ -d build/tts-check-worst/set ] || { [ -d build/tts-check-a3e6/set ] && cp -r build/tts-check-a3e6/set build/tts-check-worst/; } || true
$P -m ser_train.tts_check --model-dir build/demo-pooled-t --model-dir models/demo --out build/tts-check-worst
mkdir -p $R/tts-check
cp build/tts-check-worst/summary.{md,json} $R/tts-check/
cp build/logo-a3e6/summary.{json,md} $R/
