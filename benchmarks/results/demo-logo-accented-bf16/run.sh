#!/bin/bash
# The `accented` fold of the committed recipe trained in bfloat16 (what `make evaluate-demo-logo` does on a CPU with
# AVX512-BF16 or AMX), seeds 0 and 1 side by side, scored on its 1,000 held-out clips; beside the three float32 seeds
# of ../demo-logo-accented-seeds. Needs a bf16-native CPU (`lscpu`: avx512_bf16 or amx_tile). About 1 h on 2 cores.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-logo-accented-bf16
make data data-logo-test stage1-from-git

# The Makefile's TRAIN_ARGS (its recipe for train-demo and every fold), bfloat16 forced.
ARGS="--epochs 6 $(make -s print-train-args DEMO_BF16=--bf16)"
for S in 0 1; do
  [ -f build/logo-bf16-s$S/accented/fold.json ] || $P -m ser_train.logo --data build/data --holdout accented \
    --out build/logo-bf16-s$S --init-from build/demo-stage1 --extra-test build/data-logo-test/test.parquet \
    --train-args "$ARGS --seed $S" > build/logo-bf16-s$S.log 2>&1 &
done
wait
for S in 0 1; do cp build/logo-bf16-s$S/accented/model/training_log.json $R/training_log-seed$S.json; done
PYTHONPATH=. $P $R/score.py build/logo-bf16-s0 build/logo-bf16-s1 | tee $R/score.txt
