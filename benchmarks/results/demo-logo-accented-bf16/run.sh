#!/bin/bash
# The `accented` fold of the committed recipe trained in bfloat16 (what `make evaluate-demo-logo` does on a CPU with
# AVX512-BF16 or AMX), seed 0, scored on its 1,000 held-out clips; beside the three float32 seeds of
# ../demo-logo-accented-seeds. Needs a bf16-native CPU (`lscpu`: avx512_bf16 or amx_tile). About 2 h 15 min on 2 cores
# (data 35 min, preprocessing 25, 6 epochs of 14-17 min). Seed 1 ran beside it for two epochs and was stopped so that
# seed 0 would finish within the session: SEEDS="0 1" runs both, side by side.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-logo-accented-bf16
make data data-logo-test stage1-from-git

# The Makefile's TRAIN_ARGS (its recipe for train-demo and every fold), bfloat16 forced.
ARGS="--epochs 6 $(make -s print-train-args DEMO_BF16=--bf16)"
for S in ${SEEDS:-0}; do
  [ -f build/logo-bf16-s$S/accented/fold.json ] || $P -m ser_train.logo --data build/data --holdout accented \
    --out build/logo-bf16-s$S --init-from build/demo-stage1 --extra-test build/data-logo-test/test.parquet \
    --train-args "$ARGS --seed $S" > build/logo-bf16-s$S.log 2>&1 &
done
wait
RUNS=""; for S in ${SEEDS:-0}; do
  cp build/logo-bf16-s$S/accented/model/training_log.json $R/training_log-seed$S.json; RUNS="$RUNS build/logo-bf16-s$S"
done
PYTHONPATH=. $P $R/score.py $RUNS | tee $R/score.txt
