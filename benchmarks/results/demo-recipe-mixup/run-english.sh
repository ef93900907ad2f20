#!/bin/bash
# The three English folds (espeak-ng, flite, hts) with mixup, trained as run.sh trained `accented` and festival
# (train-folds.sh), side by side; then every fold kept in runs/ scored together (five_folds.py). About 2 h 50 min on
# 2 cores for all three (data 35 min, the folds about 2 h 15 min side by side). ENGINES="espeak-ng hts" for some.
set -e
cd "$(git rev-parse --show-toplevel)"
R=benchmarks/results/demo-recipe-mixup
bash $R/train-folds.sh ${ENGINES:-espeak-ng flite hts}
PYTHONPATH=. .venv/bin/python $R/five_folds.py $R/runs/logo-mixup-* | tee $R/five-folds.txt
