#!/bin/bash
# The three English folds (espeak-ng, flite, hts) with mixup, exactly as run.sh trained `accented` and festival (the
# Makefile's TRAIN_ARGS, float32, one torch thread each, seed 0), the three side by side on 2 cores; then all five
# folds scored together (five_folds.py), with the two committed in runs/. About 2 h 50 min on 2 cores (data 35 min,
# the three folds about 2 h 15 min side by side).
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-recipe-mixup
make data data-logo-test stage1-from-git

ARGS="--epochs 6 $(make -s print-train-args DEMO_BF16=) --mixup ${ALPHA:-0.4}"
ENGINES=${ENGINES:-espeak-ng flite hts}  # ENGINES="espeak-ng hts" for some of them
for E in $ENGINES; do
  [ -f build/logo-mixup-$E/$E/fold.json ] || $P -m ser_train.logo --data build/data --holdout $E \
    --out build/logo-mixup-$E --init-from build/demo-stage1 --extra-test build/data-logo-test/test.parquet \
    --train-args "$ARGS" > build/logo-mixup-$E.log 2>&1 &
done
wait
for E in $ENGINES; do bash $R/keep-fold.sh $E; done
PYTHONPATH=. $P $R/five_folds.py $R/runs/logo-mixup-* | tee $R/five-folds.txt
