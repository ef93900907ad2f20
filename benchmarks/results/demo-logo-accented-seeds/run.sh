#!/bin/bash
# The accented fold of the synth3-e6 recipe trained with seeds 1 and 2 (seed 0: ../demo-logo-1000-clips), the other
# four folds unchanged; every run scored on the 1,000-clip test sets, then seeds.py. About 2 h on 2 cores (STEP 1).
#
# Needs what ../demo-logo-1000-clips/run.sh made: build/data-acc3 (the recipe's data), build/data-big (the 1,000-clip
# test sets), build/demo-stage1, and its scored folds in build/logo-1000. A step whose output is there is skipped.
set -e
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-logo-accented-seeds

# STEP 1: the two seeds side by side, float32, one torch thread each, as the recipe's folds were trained.
ARGS="--batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 --calibration-copies 1 --threads 1"
for S in 1 2; do
  [ -f build/a3e6-seeds/fold-accented-s$S/training_log.json ] || $P -m ser_serve.cli train \
    --train build/data-acc3/train.parquet --validation build/data-acc3/validation.parquet --exclude-generator accented \
    --init-from build/demo-stage1 --out build/a3e6-seeds/fold-accented-s$S --epochs 6 --seed $S $ARGS \
    > build/train-accented-s$S.log 2>&1 &
done
wait

# STEP 2: per seed, a five-fold run: the four English folds' scores copied from build/logo-1000, accented scored anew.
for S in 1 2; do
  OUT=build/logo-1000-accented-s$S
  mkdir -p $OUT
  for G in espeak-ng festival flite hts; do [ -d $OUT/$G ] || cp -r build/logo-1000/$G $OUT/; done
  PYTHONPATH=. $P benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-big --out $OUT \
    accented=build/a3e6-seeds/fold-accented-s$S espeak-ng=- festival=- flite=- hts=-
  cp $OUT/summary.md $R/summary-seed$S.md
  cp build/a3e6-seeds/fold-accented-s$S/training_log.json $R/training_log-seed$S.json
done

# STEP 3: the tables and the plot.
# The served model's independent-check scores are ../demo-logo-1000-clips/run.sh's (STEP 4), re-read at each T.
PYTHONPATH=. $P $R/seeds.py $R/nll-by-temperature.png build/logo-1000 build/logo-1000-accented-s1 \
  build/logo-1000-accented-s2 --check build/tts-check-1000/0-demo --check-set build/tts-check-1000/set/check.parquet \
  | tee $R/seeds.txt
