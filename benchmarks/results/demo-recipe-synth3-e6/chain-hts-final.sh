#!/bin/bash
# synth3-e6 recipe: the hts fold beside the final model on this AVX2 host (float32, no --bf16).
# glibc: no mmap for large blocks and no trimming, so per-batch buffers are reused instead of mapped,
# faulted in and unmapped each step (same arithmetic). Since commit 410950a `ser-serve train` sets this itself (ser_train/allocator.py).
set -x
cd "$(git rev-parse --show-toplevel)"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
P=.venv/bin/python
date
ARGS="--batch-size 16 --lr 5e-4 --warmup-steps 100 --crop-seconds 4.0 --measure-weight 1.0 --augment 0.8 --label-smoothing 0.1 --calibration-copies 1 --threads 1"
D="--train build/data-acc3/train.parquet --validation build/data-acc3/validation.parquet --init-from build/demo-stage1 --epochs 6"
( $P -m ser_serve.cli train $D --exclude-generator hts --out build/a3e6/fold-hts $ARGS > build/train-hts.log 2>&1
  echo "train hts rc=$?" >> build/train-hts.log
  $P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir build/a3e6/fold-hts --out build/a3e6/fold-hts/synth > build/eval-hts.log 2>&1
  echo "eval hts rc=$?" >> build/eval-hts.log ) &
( $P -m ser_serve.cli train $D --out build/a3e6/final $ARGS > build/train-final.log 2>&1
  echo "train final rc=$?" >> build/train-final.log
  $P -m ser_serve.cli evaluate --data build/data-ab/test.parquet --generator synth --model-dir build/a3e6/final --out build/a3e6/final/synth > build/eval-final.log 2>&1
  echo "eval final rc=$?" >> build/eval-final.log ) &
wait
date
