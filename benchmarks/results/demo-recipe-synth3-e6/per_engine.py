"""The demo model's per-engine rows of the README table, from `ser-serve evaluate`'s per-clip scores.

The scores are the served probabilities (the folded T); the other temperatures are recomputed from their logs:
log p * T_folded are the logits up to a per-clip constant, which softmax ignores.

    python benchmarks/results/demo-recipe-synth3-e6/per_engine.py models/demo [EVAL_DIR]

EVAL_DIR: another evaluation of that model (its report.json), instead of its own eval/all.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ser_train.calibrate import ece_of_logits


def main(model: Path, evaluation: Path | None = None) -> None:
    report = json.loads(((evaluation or model / "eval" / "all") / "report.json").read_text())
    calibration = json.loads((model / "training_log.json").read_text())["calibration"]
    folded, validation = calibration["folded_temperature"], calibration["temperature"]
    labels = report["labels"]
    logits = np.log(np.array([[clip[label] for label in labels] for clip in report["scores"]])) * folded
    truth = np.array([labels.index(t) for t in report["truth"]])
    generators = np.array(pq.read_table(report["data"], columns=["generator"])["generator"].to_pylist())
    assert len(generators) == len(truth)

    def ece(rows, temperature):
        return ece_of_logits(logits[rows], truth[rows], temperature)

    print(f"| test clips | clips | accuracy | ECE, folded T = {folded:.3f} (served) | ECE, validation T = {validation:.3f} | ECE, no T |")
    print("|---|---|---|---|---|---|")
    for name in [*dict.fromkeys(generators), "all"]:
        rows = np.ones(len(truth), bool) if name == "all" else generators == name
        accuracy = float((logits[rows].argmax(1) == truth[rows]).mean())
        print(f"| {name} | {rows.sum():,} | {accuracy:.3f} | {ece(rows, folded):.3f} | {ece(rows, validation):.3f} "
              f"| {ece(rows, 1.0):.3f} |")


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:]))
