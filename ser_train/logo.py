"""Leave-one-generator-out evaluation: how the demo recipe does on a voice generator it never heard.

For each held-out generator: train the recipe on every other generator
(``ser-serve train --exclude-generator G``, temperature calibrated on the
validation clips of the training generators only), then evaluate on G's test
clips: accuracy, and the expected calibration error (15 equal-width bins)
after and before calibration. "Before" is recovered exactly from the
calibrated answers: with p = softmax(z / T), softmax(T log p) = softmax(z).

Writes ``<out>/<G>/model``, ``<out>/<G>/eval`` (report.json, confusion.png,
reliability.png) and ``<out>/summary.{json,md}``. A fold whose evaluation
exists is not redone (delete its folder to redo it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ser_train import evaluate, train
from ser_train.calibrate import expected_calibration_error
from ser_train.dataset import GENERATORS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_train.logo", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("build/data"), help="folder with train/validation/test.parquet")
    parser.add_argument("--holdout", nargs="+", default=list(GENERATORS[1:]), help="generators to hold out, one fold each")
    parser.add_argument("--out", type=Path, default=Path("build/logo"))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--train-args", default="", help="further `ser-serve train` options, as one string")
    return parser.parse_args(argv)


def uncalibrated_ece(result: dict, temperature: float) -> float:
    """ECE of the answers before the folded temperature T: softmax(T * log p) per answer."""
    labels = result["labels_order"]
    p = np.array([[scores[label] for label in labels] for scores in result["scores"]], dtype=np.float64)
    logits = temperature * np.log(np.clip(p, 1e-300, None))
    before = np.exp(logits - logits.max(-1, keepdims=True))
    before /= before.sum(-1, keepdims=True)
    truth = np.array([labels.index(t) for t in result["truth"]])
    return expected_calibration_error(before.max(-1), before.argmax(-1) == truth)


def fold(generator: str, args) -> dict:
    out = args.out / generator
    if (out / "fold.json").exists():
        return json.loads((out / "fold.json").read_text())
    started = time.time()
    log = train.train(train.parse_args([
        "--train", str(args.data / "train.parquet"), "--validation", str(args.data / "validation.parquet"),
        "--preset", args.preset, "--out", str(out / "model"), "--exclude-generator", generator, *args.train_args.split()]))
    minutes = (time.time() - started) / 60
    result = evaluate.evaluate(evaluate.parse_args([
        "--data", str(args.data / "test.parquet"), "--generator", generator, "--model-dir", str(out / "model"),
        "--out", str(out / "eval")]))
    result["labels_order"] = sorted(result["scores"][0])
    temperature = log["calibration"]["temperature"]
    summary = {
        "held_out": generator, "test_clips": result["examples"], "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"], "ece_after": result["ece"], "ece_before": uncalibrated_ece(result, temperature),
        "mean_confidence": result["mean_confidence"], "temperature": temperature,
        "validation": log["calibration"], "train_clips": log["train_clips"], "train_minutes": round(minutes, 1),
        "best_val_accuracy": log["best_val_accuracy"],
    }
    (out / "fold.json").write_text(json.dumps(summary, indent=2))
    return summary


def table(rows: list[dict]) -> str:
    lines = ["| held-out generator | test clips | accuracy | ECE before calibration | ECE after | mean confidence | T | train minutes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['held_out']} | {r['test_clips']} | {r['accuracy']:.3f} | {r['ece_before']:.3f} | "
                     f"{r['ece_after']:.3f} | {r['mean_confidence']:.3f} | {r['temperature']:.2f} | {r['train_minutes']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = [fold(g, args) for g in args.holdout]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    (args.out / "summary.md").write_text(table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
