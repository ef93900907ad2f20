#!/bin/bash
# train-folds.sh ENGINE...: the mixup folds holding out each ENGINE (`ser-serve train --mixup ${ALPHA:-0.4}` on top
# of the Makefile's TRAIN_ARGS, float32, one torch thread each, seed 0, as their baseline folds in
# ../demo-logo-1000-clips were trained), side by side; each scored on its engine's 1,000 held-out clips and on the
# synthetic voice's 400 test clips, and kept in runs/ (what score.py and five_folds.py read, and the 3 MB fold
# model), so that a later run reuses the fold without training it again. A fold already in build/ is not retrained.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-recipe-mixup
make data data-logo-test stage1-from-git

ARGS="--epochs 6 $(make -s print-train-args DEMO_BF16=) --mixup ${ALPHA:-0.4}"
for E in "$@"; do
  [ -f build/logo-mixup-$E/$E/fold.json ] || $P -m ser_train.logo --data build/data --holdout $E \
    --out build/logo-mixup-$E --init-from build/demo-stage1 --extra-test build/data-logo-test/test.parquet \
    --train-args "$ARGS" > build/logo-mixup-$E.log 2>&1 &
done
wait
for E in "$@"; do
  $P -m ser_serve.cli evaluate --data build/data/test.parquet --generator synth \
    --model-dir build/logo-mixup-$E/$E/model --out build/logo-mixup-$E/$E/eval-synth > /dev/null
  D=$R/runs/logo-mixup-$E/$E
  mkdir -p $D/eval $D/eval-synth $D/model
  cp build/logo-mixup-$E/$E/fold.json $D/
  cp build/logo-mixup-$E/$E/eval/report.json $D/eval/
  cp build/logo-mixup-$E/$E/eval-synth/report.json $D/eval-synth/
  cp build/logo-mixup-$E/$E/model/{config.json,preprocessor_config.json,model.safetensors,training_log.json} $D/model/
done
