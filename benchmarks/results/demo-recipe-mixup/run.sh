#!/bin/bash
# Mixup on the two folds that decide every recipe, `accented` and festival, trained side by side exactly as their
# float32 baseline pair was (train-folds.sh), and scored against that pair (score.py). About 2 h 20 min on 2 cores
# (data 35 min; the two folds about 105 min side by side). ALPHA=... for another Beta parameter.
set -e
cd "$(git rev-parse --show-toplevel)"
R=benchmarks/results/demo-recipe-mixup
bash $R/train-folds.sh accented festival
PYTHONPATH=. .venv/bin/python $R/score.py $R/runs/logo-mixup-accented $R/runs/logo-mixup-festival | tee $R/score.txt
