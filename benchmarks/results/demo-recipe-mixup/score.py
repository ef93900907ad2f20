"""The mixup folds (`accented` and festival held out) on their 1,000 held-out clips, beside the same pair trained
without mixup on the same host (../demo-logo-1000-clips); and a plot of each fold's ECE against T.

    python score.py ACCENTED_RUN FESTIVAL_RUN

RUN: a ``ser_train.logo --holdout G`` output folder (G/fold.json, G/eval/report.json, G/eval-synth/report.json).

What would make mixup worth the five-fold run (decided before the folds were trained): both folds at or above
0.375 held out (3x chance), both fold models at or above 0.95 on the synthetic voice's test split, and **one
temperature fitting both unheard engines**: each fold's ECE at or under 0.10 at the T the *other* fold's held-out
clips ask for (the cross-fold test of ``ser_train.logo`` with one other fold). The baseline pair fails that: its
`accented` fold asked for T 2.01 and was at 0.184 under the English folds' 1.39.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from ser_train.calibrate import (ece_bootstrap_interval, ece_of_logits, fit_temperature, fit_worst_group_temperature,
                                 folded_temperature)
from ser_train.evaluate import plot_ece_by_temperature
from ser_train.logo import raw_logits

HERE = Path(__file__).parent
BASELINE = HERE.parent / "demo-logo-1000-clips" / "summary.json"


def fold_of(run: Path) -> dict:
    """The fold in ``run``: its summary row, raw held-out logits, own best T, and synthetic-split accuracy."""
    engine = next(p.parent.name for p in run.glob("*/fold.json"))
    row = json.loads((run / engine / "fold.json").read_text())
    z, y = raw_logits(json.loads((run / engine / "eval" / "report.json").read_text()), row["temperature"])
    synth = json.loads((run / engine / "eval-synth" / "report.json").read_text())
    log = json.loads((run / engine / "model" / "training_log.json").read_text())
    return {"engine": engine, "row": row, "z": z, "y": y, "own": fit_temperature(z, y), "synth": synth["accuracy"],
            "synth_clips": synth["examples"], "mixup": log["args"].get("mixup", 0.0),
            "minutes": np.mean([h["seconds"] for h in log["history"]]) / 60}


def with_range(z, y, t) -> str:
    low, high = ece_bootstrap_interval(z, y, t)
    return f"{ece_of_logits(z, y, t):.3f} ({low:.3f}-{high:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs=2)
    parser.add_argument("--plot", type=Path, default=HERE / "ece-by-temperature.png")
    args = parser.parse_args()
    folds = [fold_of(run) for run in args.runs]
    baseline = {r["held_out"]: r for r in json.loads(BASELINE.read_text())["folds"]}
    english = baseline["accented"]["cross_temperature"]
    served = folded_temperature(json.loads(Path("models/demo/training_log.json").read_text()))
    both = fit_worst_group_temperature([(f["z"], f["y"]) for f in folds])

    print(f"mixup alpha {folds[0]['mixup']}; T of both mixup folds' held-out clips (worst engine's NLL): {both:.3f}\n")
    print("| held out | accuracy, 1,000 clips | synthetic split | ECE uncalibrated | own best T "
          "| ECE at the other fold's own T (T), 5-95 % | ECE at both folds' T | validation T | best validation accuracy "
          "| minutes per epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fold, other in ((folds[0], folds[1]), (folds[1], folds[0])):
        row = fold["row"]
        print(f"| {fold['engine']} | {row['accuracy']:.3f} ({round(row['accuracy'] * row['test_clips'])} of "
              f"{row['test_clips']}) | {fold['synth']:.4f} ({round(fold['synth'] * fold['synth_clips'])} of "
              f"{fold['synth_clips']}) | {row['ece_before']:.3f} | {fold['own']:.2f} "
              f"| {with_range(fold['z'], fold['y'], other['own'])} ({other['own']:.2f}) "
              f"| {ece_of_logits(fold['z'], fold['y'], both):.3f} | {row['temperature']:.2f} "
              f"| {row['best_val_accuracy']:.3f} | {fold['minutes']:.1f} |")
    ratio = folds[0]["own"] / folds[1]["own"]
    print(f"\nown best T, {folds[0]['engine']} / {folds[1]['engine']}: {ratio:.2f}")

    print("\nThe same pair without mixup (../demo-logo-1000-clips, same host, float32, seed 0):\n")
    print("| held out | accuracy | ECE uncalibrated | ECE at the other four folds' T (T) |")
    print("|---|---|---|---|")
    for fold in folds:
        row = baseline[fold["engine"]]
        print(f"| {fold['engine']} | {row['accuracy']:.3f} | {row['ece_before']:.3f} | {row['ece_cross']:.3f} "
              f"({row['cross_temperature']:.2f}) |")
    print(f"\nThe mixup folds at the baseline's temperatures: English folds' T {english:.3f}, served T {served:.3f}\n")
    print("| held out | ECE at the English folds' T | ECE at the served T |")
    print("|---|---|---|")
    for fold in folds:
        print(f"| {fold['engine']} | {ece_of_logits(fold['z'], fold['y'], english):.3f} "
              f"| {ece_of_logits(fold['z'], fold['y'], served):.3f} |")

    plot_ece_by_temperature(
        [(f"{f['engine']} held out (own best T {f['own']:.2f})", f["z"], f["y"]) for f in folds],
        [("both folds' T", both, "--"), ("served T", served, ":")], args.plot,
        "ECE on the held-out engine's 1,000 clips", f"mixup (alpha {folds[0]['mixup']}): held-out ECE by temperature")
    print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
