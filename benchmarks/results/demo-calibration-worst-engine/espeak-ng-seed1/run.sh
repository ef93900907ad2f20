#!/bin/bash
# A second seed of the espeak-ng fold (synth3-e6 recipe, float32 on this AVX2 host): is its held-out ECE seed noise?
set -x
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
date
ARGS="--batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 --calibration-copies 1 --threads 1"
D="--train build/data-acc3/train.parquet --validation build/data-acc3/validation.parquet --init-from build/demo-stage1 --epochs 6"
$P -m ser_serve.cli train $D --exclude-generator espeak-ng --seed 1 --out build/seed1/fold-espeak-ng $ARGS || exit 1
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator espeak-ng --model-dir build/seed1/fold-espeak-ng --out build/seed1/fold-espeak-ng/eval
$P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir build/seed1/fold-espeak-ng --out build/seed1/fold-espeak-ng/synth
date
