#!/bin/bash
# After the hts fold: five-fold summary, ECE-against-T plot, into the write-up.
cd "$(git rev-parse --show-toplevel)"
P=.venv/bin/python
R=benchmarks/results/demo-recipe-synth3-e6
$P benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-ab --out build/logo-a3e6 \
  accented=none festival=none espeak-ng=none flite=none hts=build/a3e6/fold-hts || exit 1
mkdir -p $R/hts/eval $R/hts/synth
cp build/logo-a3e6/hts/fold.json $R/hts/
cp build/a3e6/fold-hts/training_log.json $R/hts/
cp build/logo-a3e6/hts/eval/report.json build/logo-a3e6/hts/eval/confusion.png $R/hts/eval/
cp build/a3e6/fold-hts/synth/report.json $R/hts/synth/
cp build/logo-a3e6/summary.md $R/summary-5folds.md; cp build/logo-a3e6/summary.json $R/summary-5folds.json
cat $R/summary-5folds.md
PYTHONPATH=. $P $R/ece_vs_temperature.py build/logo-a3e6 $R/ece-vs-temperature-5folds.png
python3 -c "
import json; r=json.load(open('$R/hts/synth/report.json')); print('hts fold synth split', r['accuracy'], round(r['accuracy']*r['examples']))
l=json.load(open('$R/hts/training_log.json')); print(' epochs min', [round(e['seconds']/60,1) for e in l['history']], 'best val', l['best_val_accuracy'])"
