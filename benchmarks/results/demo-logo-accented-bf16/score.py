"""The bfloat16 `accented` folds on their 1,000 held-out clips: accuracy, how over-confident they are (their own best T),
and their ECE at the temperatures that matter, beside the float32 seeds; and a plot of ECE against T.

    python score.py RUN [RUN ...]

RUN: a ``ser_train.logo --holdout accented`` output folder (accented/fold.json, accented/eval/report.json).
The temperatures are read, not typed: the one the four English folds' held-out clips give by the served rule
(../demo-logo-1000-clips/summary.json, the accented row's cross_temperature: float32 folds, AMD host) and the one
the served model carries (models/demo/training_log.json).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from ser_train.calibrate import ece_bootstrap_interval, ece_of_logits, fit_temperature, folded_temperature
from ser_train.evaluate import plot_ece_by_temperature
from ser_train.logo import raw_logits

HERE = Path(__file__).parent
FOCUS = "accented"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path, default=HERE / "ece-by-temperature.png")
    args = parser.parse_args()
    english = next(r for r in json.loads((HERE.parent / "demo-logo-1000-clips" / "summary.json").read_text())["folds"]
                   if r["held_out"] == FOCUS)["cross_temperature"]
    served = folded_temperature(json.loads(Path("models/demo/training_log.json").read_text()))
    print(f"T of the four English folds (float32, worst engine's NLL): {english:.3f}; the served model's T: {served:.3f}\n")
    print("| run | precision, seed | accuracy | ECE uncalibrated | its own best T | ECE at the English folds' T "
          "(5-95 %) | ECE at the served T | validation T | best validation accuracy | minutes per epoch | updates skipped (NaN) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    curves = []
    for run in args.runs:
        row = json.loads((run / FOCUS / "fold.json").read_text())
        log = json.loads((run / FOCUS / "model" / "training_log.json").read_text())
        z, y = raw_logits(json.loads((run / FOCUS / "eval" / "report.json").read_text()), row["temperature"])
        own = fit_temperature(z, y)
        low, high = ece_bootstrap_interval(z, y, english)
        precision = "bfloat16" if log["args"]["bf16"] else "float32"
        minutes = np.mean([h["seconds"] for h in log["history"]]) / 60
        print(f"| {run.name} | {precision}, {log['args']['seed']} | {row['accuracy']:.3f} "
              f"({round(row['accuracy'] * row['test_clips'])} of {row['test_clips']}) | {row['ece_before']:.3f} "
              f"| {own:.2f} | {ece_of_logits(z, y, english):.3f} ({low:.3f}-{high:.3f}) | {ece_of_logits(z, y, served):.3f} "
              f"| {row['temperature']:.2f} | {row['best_val_accuracy']:.3f} | {minutes:.1f} | {log.get('skipped_steps', 0)} |")
        curves.append((f"{precision}, seed {log['args']['seed']} (own best T {own:.2f})", z, y))
    plot_ece_by_temperature(curves, [("English folds' T", english, "--"), ("served T", served, ":")], args.plot,
                            f"ECE on the held-out {FOCUS} clips", f"{FOCUS} fold held out: ECE by temperature")
    print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
