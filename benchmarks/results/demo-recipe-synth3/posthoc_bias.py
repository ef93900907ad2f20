"""Temperature plus a per-label bias, fitted on the other folds' held-out clips: does it move an unheard voice?

Each fold of a ``python -m ser_train.logo`` run is scored as the project scores its temperature
(``ser_train.logo.cross_generator``): the calibration is fitted (NLL) on the *other* folds' held-out test
clips, never its own. Unlike a temperature, a bias vector can change the arg-max, so accuracy is reported too.

    python benchmarks/results/demo-recipe-synth3/posthoc_bias.py build/logo-acc-e8
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from ser_train.calibrate import expected_calibration_error, fit_temperature
from ser_train.logo import raw_logits


def fit_temperature_and_bias(logits, labels):
    """T > 0 and a bias b (first label's fixed at 0) minimising the NLL of softmax(logits / T + b)."""
    def loss(p):
        b = np.concatenate([[0.0], p[1:]])
        return -log_softmax(logits / np.exp(p[0]) + b, axis=-1)[np.arange(len(labels)), labels].mean()
    p = minimize(loss, np.zeros(logits.shape[1]), method="L-BFGS-B").x
    return float(np.exp(p[0])), np.concatenate([[0.0], p[1:]])


def accuracy_and_ece(logits, labels, temperature, bias):
    p = softmax(logits / temperature + bias, axis=-1)
    correct = p.argmax(-1) == labels
    return correct.mean(), expected_calibration_error(p.max(-1), correct), np.bincount(p.argmax(-1), minlength=p.shape[1])


def held_out_logits(out: Path) -> dict:
    """Each finished fold's uncalibrated logits and labels on its held-out engine's test clips."""
    folds = [json.loads(f.read_text()) for f in sorted(out.glob("*/fold.json"))]
    return {f["held_out"]: raw_logits(json.loads((out / f["held_out"] / "eval/report.json").read_text()),
                                      f["temperature"]) for f in folds}


def main(out: Path) -> None:
    held = held_out_logits(out)
    print("| held out | T only: accuracy | ECE (T) | T and bias: accuracy | ECE (T) | answers per label |")
    print("|---|---|---|---|---|---|")
    for g, (z, y) in held.items():
        others_z = np.concatenate([held[o][0] for o in held if o != g])
        others_y = np.concatenate([held[o][1] for o in held if o != g])
        t0 = fit_temperature(others_z, others_y)
        t1, bias = fit_temperature_and_bias(others_z, others_y)
        a0, e0, _ = accuracy_and_ece(z, y, t0, 0.0)
        a1, e1, answers = accuracy_and_ece(z, y, t1, bias)
        print(f"| {g} | {a0:.3f} | {e0:.3f} ({t0:.2f}) | {a1:.3f} | {e1:.3f} ({t1:.2f}) | {answers.tolist()} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
