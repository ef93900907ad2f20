#!/bin/bash
# synth3-e6 recipe: espeak-ng + flite folds side by side on this AVX2 host (float32, no --bf16).
# The session's chain, kept as run (build/ is not committed). Logs go to build/*.log.
set -x
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
date
( $P -m ser_serve.cli synth --out build/data-ab --per-label 400 25 50 --tts-per-label 300 20 40 \
    --generators synth espeak-ng flite festival hts accented > build/data-ab.log 2>&1 ) &
( $P -m ser_serve.cli synth --out build/data-synth3 --per-label 1200 25 50 --generators synth > build/data-synth3.log 2>&1 ) &
wait
date
mkdir -p build/data-acc3
$P -c "
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
ab = pq.read_table('build/data-ab/train.parquet')
pq.write_table(pa.concat_tables([pq.read_table('build/data-synth3/train.parquet'),
               ab.filter(pc.not_equal(ab['generator'], 'synth'))]), 'build/data-acc3/train.parquet')" || exit 1
ln -sf ../data-ab/validation.parquet ../data-ab/test.parquet build/data-acc3/
ARGS="--batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 --calibration-copies 1 --threads 1"
for G in espeak-ng flite; do
  ( $P -m ser_serve.cli train --train build/data-acc3/train.parquet --validation build/data-acc3/validation.parquet \
      --exclude-generator $G --init-from build/demo-stage1 --out build/a3e6/fold-$G --epochs 6 $ARGS > build/train-$G.log 2>&1
    echo "train $G rc=$?" >> build/train-$G.log
    $P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir build/a3e6/fold-$G --out build/a3e6/fold-$G/synth > build/eval-$G.log 2>&1
    echo "eval $G rc=$?" >> build/eval-$G.log ) &
done
wait
date
R=benchmarks/results/demo-recipe-synth3-e6
for G in accented festival; do mkdir -p build/logo-a3e6/$G; cp -r $R/$G/fold.json $R/$G/eval build/logo-a3e6/$G/; done
$P benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-ab --out build/logo-a3e6 \
  accented=none festival=none espeak-ng=build/a3e6/fold-espeak-ng flite=build/a3e6/fold-flite > build/assemble.log 2>&1
echo "assemble rc=$?"
date
