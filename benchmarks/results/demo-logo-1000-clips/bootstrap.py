"""Held-out ECE per fold on two test sets side by side (e.g. 1,000 clips per engine against the 320 of them that
make data gives), each with how far its clips pin it down:

* the 5-95 % range of the ECE over the clips drawn with replacement (``calibrate.ece_bootstrap_interval``);
* the floor: the median ECE that a perfectly calibrated model with the same confidences would read on this many
  clips (labels drawn from the model's own probabilities under the fold's T): the ECE of a finite set leans high.

    python bootstrap.py OUT.png RUN [RUN ...]     (RUN: a ser_train.logo output folder with its summary.json)
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.special import softmax  # noqa: E402

from ser_train.calibrate import ece_bootstrap_interval, ece_of_logits  # noqa: E402
from ser_train.logo import raw_logits  # noqa: E402

TARGET_ECE = 0.10


def calibrated_floor(logits, temperature: float, draws: int = 200, seed: int = 0) -> float:
    """Median ECE of a model exactly as sure as this one and perfectly calibrated, on as many clips."""
    rng = np.random.default_rng(seed)
    p = softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    cumulative = p.cumsum(-1)
    eces = []
    for _ in range(draws):
        labels = (rng.random((len(p), 1)) > cumulative).sum(-1).clip(max=p.shape[1] - 1)
        eces.append(ece_of_logits(logits, labels, temperature))
    return float(np.median(eces))


def scored(run: Path) -> tuple[list[dict], dict]:
    summary = json.loads((run / "summary.json").read_text())
    rows = []
    for r in summary["folds"]:
        z, y = raw_logits(json.loads((run / r["held_out"] / "eval" / "report.json").read_text()), r["temperature"])
        low, high = ece_bootstrap_interval(z, y, r["cross_temperature"])
        rows.append({**r, "low": low, "high": high, "floor": calibrated_floor(z, r["cross_temperature"])})
    return rows, summary


def print_run(run: Path, rows: list[dict], summary: dict) -> None:
    print(f"\n{run.name}\n\n| held out | clips | accuracy | ECE, T of the other folds (T) | 5-95 % bootstrap range "
          "| a calibrated model's ECE on as many clips |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['held_out']} | {r['test_clips']} | {r['accuracy']:.3f} | {r['ece_cross']:.3f} "
              f"({r['cross_temperature']:.2f}) | {r['low']:.3f}-{r['high']:.3f} | {r['floor']:.3f} |")
    eces = [r["ece_cross"] for r in rows]
    print(f"| worst / mean | | | {max(eces):.3f} / {np.mean(eces):.3f} | | |")
    print(f"\nT of all {len(rows)} folds (worst engine's NLL): {summary['cross_generator_temperature']:.3f}; "
          f"pooled NLL: {summary['cross_generator_temperature_pooled']:.3f}")


def plot(runs: list[tuple[str, list[dict]]], png: Path) -> None:
    engines = [r["held_out"] for r in runs[0][1]]
    x, width = np.arange(len(engines)), 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (name, rows) in enumerate(runs):
        by = {r["held_out"]: r for r in rows}
        ece = np.array([by[g]["ece_cross"] for g in engines])
        span = np.array([[ece[k] - by[g]["low"], by[g]["high"] - ece[k]] for k, g in enumerate(engines)]).T
        offset = x + (i - (len(runs) - 1) / 2) * width
        ax.bar(offset, ece, width, yerr=np.clip(span, 0, None), capsize=3,
               label=f"{name} ({rows[0]['test_clips']} clips per engine)")
        ax.scatter(offset, [by[g]["floor"] for g in engines], marker="_", s=300, color="black", zorder=3,
                   label="a calibrated model's ECE on as many clips" if i == 0 else None)
    ax.axhline(TARGET_ECE, color="black", linestyle="--", linewidth=1, label=f"target {TARGET_ECE}")
    ax.set_xticks(x, engines)
    ax.set_ylabel("held-out ECE, T of the other folds (15 bins)")
    ax.set_title("Held-out engine's ECE; bars: 5-95 % bootstrap range", fontsize=10)
    ax.set_ylim(0, 0.25)
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"\nwrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    runs = []
    for run in args.runs:
        rows, summary = scored(run)
        print_run(run, rows, summary)
        runs.append((run.name, rows))
    plot(runs, args.png)


if __name__ == "__main__":
    main()
