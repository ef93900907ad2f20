#!/bin/bash
# keep-fold.sh ENGINE: score the mixup fold that held ENGINE out (build/logo-mixup-ENGINE) on the synthetic voice's
# 400 test clips, and keep what score.py and five_folds.py read, and the fold model (3 MB), in runs/: a later
# five-fold run reuses the fold without training it again.
set -e
E=$1
R=benchmarks/results/demo-recipe-mixup
.venv/bin/python -m ser_serve.cli evaluate --data build/data/test.parquet --generator synth \
  --model-dir build/logo-mixup-$E/$E/model --out build/logo-mixup-$E/$E/eval-synth > /dev/null
D=$R/runs/logo-mixup-$E/$E
mkdir -p $D/eval $D/eval-synth $D/model
cp build/logo-mixup-$E/$E/fold.json $D/
cp build/logo-mixup-$E/$E/eval/report.json $D/eval/
cp build/logo-mixup-$E/$E/eval-synth/report.json $D/eval-synth/
cp build/logo-mixup-$E/$E/model/{config.json,preprocessor_config.json,model.safetensors,training_log.json} $D/model/
