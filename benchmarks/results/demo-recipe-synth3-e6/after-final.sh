#!/bin/bash
# After the final model: fold in the five folds' temperature, evaluate as make evaluate-demo does, independent check.
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-recipe-synth3-e6
M=build/demo-a3e6
rm -rf $M && mkdir -p $M
cp build/a3e6/final/{config.json,preprocessor_config.json,model.safetensors,training_log.json} $M/
$P -m ser_train.calibrate --model-dir $M --logo-summary build/logo-a3e6/summary.json || exit 1
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir $M --out $M/eval/synth || exit 1
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --model-dir $M --out $M/eval/all || exit 1
# The previous demo model from git beside the new one (as first run, the check took models/demo after it had been
# replaced, so both columns were the new model; the committed tts-check/ is this corrected form).
mkdir -p build/demo-prev
for f in config.json preprocessor_config.json model.safetensors training_log.json; do
  git show 44d49f0:models/demo/$f > build/demo-prev/$f; done
$P -m ser_train.tts_check --model-dir build/demo-prev --model-dir $M --out build/tts-check-a3e6 || exit 1
mkdir -p $R/final/synth $R/tts-check
cp $M/training_log.json $R/final/
cp $M/eval/synth/report.json $R/final/synth/
cp build/tts-check-a3e6/summary.{md,json} $R/tts-check/
python3 -c "
import json; r=json.load(open('$M/eval/synth/report.json')); print('final synth split', r['accuracy'], round(r['accuracy']*r['examples']), 'ece', r.get('ece'))
r=json.load(open('$M/eval/all/report.json')); print('final all', r['accuracy'], r['examples'], 'ece', r.get('ece'))
l=json.load(open('$M/training_log.json')); print(' epochs min', [round(e['seconds']/60,1) for e in l['history']], 'best val', l['best_val_accuracy'], l['calibration'])"
cat build/tts-check-a3e6/summary.md
