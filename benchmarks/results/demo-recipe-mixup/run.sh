#!/bin/bash
# Mixup (`ser-serve train --mixup 0.4`) on the two folds that decide every recipe, `accented` and festival, trained
# side by side exactly as their float32 baseline pair was (../demo-logo-1000-clips: the Makefile's TRAIN_ARGS,
# float32, one torch thread each, seed 0), scored on their 1,000 held-out clips, and each fold model on the synthetic
# voice's 400 test clips. About 2 h 20 min on 2 cores (data 35 min; the two folds about 105 min side by side).
# ALPHA=... for another Beta parameter.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-recipe-mixup
make data data-logo-test stage1-from-git

ARGS="--epochs 6 $(make -s print-train-args DEMO_BF16=) --mixup ${ALPHA:-0.4}"
for E in accented festival; do
  [ -f build/logo-mixup-$E/$E/fold.json ] || $P -m ser_train.logo --data build/data --holdout $E \
    --out build/logo-mixup-$E --init-from build/demo-stage1 --extra-test build/data-logo-test/test.parquet \
    --train-args "$ARGS" > build/logo-mixup-$E.log 2>&1 &
done
wait
for E in accented festival; do bash $R/keep-fold.sh $E; done
PYTHONPATH=. $P $R/score.py $R/runs/logo-mixup-accented $R/runs/logo-mixup-festival | tee $R/score.txt
