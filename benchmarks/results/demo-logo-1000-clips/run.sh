#!/bin/bash
# Leave-one-generator-out on 1,000 held-out clips per engine instead of 320: the synth3-e6 recipe's five folds, scored on
# the make-data test split (seed 0, 40 clips per label and engine) plus 85 more per label from seed 1 (the same six
# test sentences, never trained on; new speakers and prosody draws). About 2 h on 2 cores, most of it STEP 2.
#
# Needs build/data-acc3 and build/data-ab (benchmarks/results/demo-recipe-synth3-e6: the recipe's data), build/demo-stage1
# (make stage1-from-git) and the espeak-ng, flite and hts folds in build/a3e6/fold-* (the same write-up's run); STEP 2
# trains the other two. models/demo is only read. A step whose output is there is skipped.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-logo-1000-clips

# STEP 1: 85 more test clips per label of every generator, seed 1, merged with the seed-0 test split.
if [ ! -f build/data-big/test.parquet ]; then
  [ -f build/data-test-s1/test.parquet ] || $P -m ser_serve.cli synth --out build/data-test-s1 --seed 1 \
    --per-label 0 0 85 --tts-per-label 0 0 85 --generators synth espeak-ng flite festival hts accented
  $P -c "from ser_train.dataset import merge_test_splits as m; m('build/data-ab/test.parquet', 'build/data-test-s1/test.parquet', 'build/data-big/test.parquet')"
fi

# STEP 2: the accented and festival folds were trained on another host; train them here, side by side, as the
# recipe trained the others (float32, one torch thread each; about 105 min).
ARGS="--batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 --calibration-copies 1 --threads 1"
for G in accented festival; do
  [ -f build/a3e6/fold-$G/training_log.json ] || $P -m ser_serve.cli train --train build/data-acc3/train.parquet \
    --validation build/data-acc3/validation.parquet --exclude-generator $G --init-from build/demo-stage1 \
    --out build/a3e6/fold-$G --epochs 6 $ARGS > build/train-$G.log 2>&1 &
done
wait

# STEP 3: the five folds scored on 1,000 clips of their held-out engine (build/logo-1000) and, for comparison, on the
# 320 of the make-data split alone (build/logo-320-here: the same five models); each with the summary's Ts.
FOLDS=""; for G in accented espeak-ng festival flite hts; do FOLDS="$FOLDS $G=build/a3e6/fold-$G"; done
PYTHONPATH=. $P benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-big --out build/logo-1000 $FOLDS
PYTHONPATH=. $P benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-ab --out build/logo-320-here $FOLDS
cp build/logo-1000/summary.json $R/summary.json; cp build/logo-1000/summary.md $R/summary.md
cp build/logo-320-here/summary.json $R/summary-320.json; cp build/logo-320-here/summary.md $R/summary-320.md
for G in accented festival; do cp build/a3e6/fold-$G/training_log.json $R/training_log-$G.json; done
PYTHONPATH=. $P "$R/bootstrap.py" "$R/ece-1000-vs-320.png" build/logo-1000 build/logo-320-here | tee "$R/bootstrap.txt"

# STEP 4: the T that all five folds' 1,000-clip sets give (the rule unchanged: the worst engine's NLL), folded into a
# copy of models/demo (build/demo-t2006: a candidate, not adopted, see README), evaluated as `make evaluate-demo` does
# (the make-data test split) and on the 1,000-clip sets; then the independent check, the committed model beside it.
rm -rf build/demo-t2006; mkdir -p build/demo-t2006
cp models/demo/{config.json,preprocessor_config.json,model.safetensors,training_log.json} build/demo-t2006/
$P -m ser_train.calibrate --model-dir build/demo-t2006 --logo-summary build/logo-1000/summary.json
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --model-dir build/demo-t2006 --out build/demo-t2006/eval/all
$P -m ser_serve.cli evaluate --data build/data-big/test.parquet --model-dir build/demo-t2006 --out build/demo-t2006-1000
mkdir -p build/tts-check-1000
[ -d build/tts-check-1000/set ] || { [ -d build/tts-check-a3e6/set ] && cp -r build/tts-check-a3e6/set build/tts-check-1000/; } || true
$P -m ser_train.tts_check --model-dir models/demo --model-dir build/demo-t2006 --out build/tts-check-1000
mkdir -p $R/tts-check $R/t2006-candidate
cp build/tts-check-1000/summary.{md,json} $R/tts-check/
PYTHONPATH=. $P benchmarks/results/demo-recipe-synth3-e6/per_engine.py build/demo-t2006 build/demo-t2006-1000 | tee $R/t2006-candidate/per-engine-1000.txt
PYTHONPATH=. $P benchmarks/results/demo-recipe-synth3-e6/per_engine.py build/demo-t2006 | tee $R/t2006-candidate/per-engine-320.txt
# The committed model (T 1.583) on the 1,000-clip sets, for comparison.
$P -m ser_serve.cli evaluate --data build/data-big/test.parquet --model-dir models/demo --out build/demo-eval-1000
PYTHONPATH=. $P benchmarks/results/demo-recipe-synth3-e6/per_engine.py models/demo build/demo-eval-1000 | tee $R/committed-model-1000.txt
