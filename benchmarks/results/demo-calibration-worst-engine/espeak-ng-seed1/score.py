"""The second seed of the espeak-ng fold under the two cross-fold temperatures of the committed (seed 0) folds.

    PYTHONPATH=. python benchmarks/results/demo-calibration-worst-engine/espeak-ng-seed1/score.py
"""

import json
from pathlib import Path

from ser_train.calibrate import ece_of_logits, fit_temperature
from ser_train.logo import cross_generator, raw_logits

HERE = Path(__file__).parent
RUN = HERE.parents[1] / "demo-recipe-synth3-e6"  # the five seed-0 folds whose other-fold T this fold is scored under

rows = [json.loads(f.read_text()) for f in sorted(RUN.glob("*/fold.json"))]
cross_generator(rows, RUN)
seed0 = next(r for r in rows if r["held_out"] == "espeak-ng")
log = json.loads((HERE / "training_log.json").read_text())
held_out = json.loads((HERE / "eval" / "report.json").read_text())
synth = json.loads((HERE / "synth" / "report.json").read_text())
z, y = raw_logits(held_out, log["calibration"]["temperature"])  # the fold carries its validation T
print(f"seed 1: held-out accuracy {held_out['accuracy']:.4f} ({round(held_out['accuracy'] * held_out['examples'])} of "
      f"{held_out['examples']}), synthetic split {synth['accuracy']:.4f}, own T {fit_temperature(z, y):.2f}")
for rule, t in (("worst engine", seed0["cross_temperature"]), ("pooled", seed0["cross_temperature_pooled"])):
    print(f"  ECE under the other folds' T, {rule} ({t:.2f}): {ece_of_logits(z, y, t):.3f}")
print(f"seed 0: held-out accuracy {seed0['accuracy']:.4f}, ECE worst engine {seed0['ece_cross']:.3f}, "
      f"pooled {seed0['ece_cross_pooled']:.3f}")
print(f"seed 1 epochs (minutes): {[round(e['seconds'] / 60, 1) for e in log['history']]}, "
      f"best validation {log['best_val_accuracy']:.3f}")
