"""Two rules for the temperature an unheard voice gets, side by side on every five-fold run that kept its answers.

For each fold of a leave-one-generator-out run (``<G>/fold.json``, ``<G>/eval/report.json``), the held-out
engine's ECE under the T fitted on the *other* folds' held-out clips by either rule (``ser_train.logo.cross_generator``):

* pooled: the NLL of all their clips pooled (the rule until this write-up);
* worst engine: the largest of their per-engine NLLs minimised (``calibrate.fit_worst_group_temperature``).

With ``--fold-on-check DIR``, also each fold model's answers on the independent check's clips of its own held-out
engine (``DIR/<G>/report.json``: ``ser-serve evaluate --data <check set> --generator G --model-dir <fold model>``),
under the two Ts of the first run's folds: a held-out engine speaking prosody rules and sentences of its own.

    python benchmarks/results/demo-calibration-worst-engine/compare_rules.py OUT.png RUN [RUN ...] [--fold-on-check DIR]
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ser_train.calibrate import ece_bootstrap_interval, ece_of_logits, fit_temperature  # noqa: E402
from ser_train.logo import cross_generator, raw_logits  # noqa: E402

TARGET_ECE = 0.10


def rules_per_fold(run: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(f.read_text()) for f in sorted(run.glob("*/fold.json"))]
    return rows, cross_generator(rows, run)


def print_run(run: Path, rows: list[dict], summary: dict) -> None:
    print(f"\n{run.name}\n\n| held out | accuracy | ECE, pooled T (T) | ECE, worst-engine T (T) | its 5-95 % bootstrap range |"
          "\n|---|---|---|---|---|")
    for r in rows:
        z, y = raw_logits(json.loads((run / r["held_out"] / "eval" / "report.json").read_text()), r["temperature"])
        low, high = ece_bootstrap_interval(z, y, r["cross_temperature"])
        print(f"| {r['held_out']} | {r['accuracy']:.3f} | {r['ece_cross_pooled']:.3f} ({r['cross_temperature_pooled']:.2f}) "
              f"| {r['ece_cross']:.3f} ({r['cross_temperature']:.2f}) | {low:.3f}-{high:.3f} |")
    pooled, worst = [r["ece_cross_pooled"] for r in rows], [r["ece_cross"] for r in rows]
    print(f"| worst / mean | | {max(pooled):.3f} / {np.mean(pooled):.3f} | {max(worst):.3f} / {np.mean(worst):.3f} | |")
    print(f"\nT of all {len(rows)} folds: pooled {summary['cross_generator_temperature_pooled']:.3f}, "
          f"worst engine {summary['cross_generator_temperature']:.3f}")


def print_fold_on_check(rows: list[dict], check: Path) -> list[dict]:
    print(f"\nFold models on the independent check's clips of their held-out engine ({check})\n\n"
          "| held out | clips | accuracy | own T | ECE, pooled T | ECE, worst-engine T |\n|---|---|---|---|---|---|")

    found = []
    for r in rows:
        report = check / r["held_out"] / "report.json"
        if not report.exists():
            continue
        result = json.loads(report.read_text())
        z, y = raw_logits(result, r["temperature"])  # the fold model carries its validation T
        found.append({"held_out": r["held_out"], "ece_cross_pooled": ece_of_logits(z, y, r["cross_temperature_pooled"]),
                      "ece_cross": ece_of_logits(z, y, r["cross_temperature"])})
        print(f"| {r['held_out']} | {result['examples']} | {result['accuracy']:.3f} | {fit_temperature(z, y):.2f} | "
              f"{found[-1]['ece_cross_pooled']:.3f} | {found[-1]['ece_cross']:.3f} |")
    return found


def plot(panels: list[tuple[str, list[dict]]], png: Path) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), sharey=True, squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels):
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["ece_cross_pooled"] for r in rows], 0.4, label="T of the pooled NLL", color="#bbbbbb")
        ax.bar(x + 0.2, [r["ece_cross"] for r in rows], 0.4, label="T of the worst engine's NLL", color="#3b75af")
        ax.axhline(TARGET_ECE, color="black", linestyle="--", linewidth=1, label=f"target {TARGET_ECE}")
        ax.set_xticks(x, [r["held_out"] for r in rows], rotation=30)
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("ECE on the held-out engine (15 bins)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3)
    fig.suptitle("Held-out engine's ECE under the T fitted on the other folds' held-out clips", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(png, dpi=110)
    print(f"\nwrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--fold-on-check", type=Path)
    args = parser.parse_args()
    panels, rows_of = [], {}
    for run in args.runs:
        rows_of[run], summary = rules_per_fold(run)
        print_run(run, rows_of[run], summary)
        panels.append((f"{run.name}: test clips of the held-out engine", rows_of[run]))
    if args.fold_on_check:
        found = print_fold_on_check(rows_of[args.runs[0]], args.fold_on_check)
        panels.append((f"{args.runs[0].name} folds: the independent check's clips", found))
    plot(panels, args.png)


if __name__ == "__main__":
    main()
