"""Each finished fold's ECE on its held-out engine as the temperature T varies, with the T fitted on the other
folds' held-out clips marked (the issue's protocol) and the T of all folds (what the final model would carry).

Prints a table (each fold's own NLL temperature, its ECE there, its ECE at the others' T and at the pooled T) and
writes the curves to OUT.png. Reads a ser_train.logo-style folder (<G>/fold.json, <G>/eval/report.json).

    python benchmarks/results/demo-recipe-synth3-e6/ece_vs_temperature.py build/logo-a3e6 ece-vs-t.png
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ser_train.calibrate import ece_of_logits, fit_temperature  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "demo-recipe-synth3"))
from posthoc_bias import held_out_logits  # noqa: E402 (the folds' uncalibrated logits and labels)

TEMPERATURES = np.round(np.arange(0.8, 2.61, 0.02), 2)
TARGET_ECE = 0.10


def pooled_temperature(folds: dict, keep) -> float:
    chosen = [folds[g] for g in folds if keep(g)]
    return fit_temperature(np.concatenate([z for z, _ in chosen]), np.concatenate([y for _, y in chosen]))


def main(run: Path, png: Path) -> None:
    folds = held_out_logits(run)
    t_all = pooled_temperature(folds, lambda g: True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    print("| held out | own T (ECE there) | ECE at the other folds' T (T) | ECE at all folds' T |")
    print("|---|---|---|---|")
    for g, (z, y) in folds.items():
        t_own = fit_temperature(z, y)
        t_others = pooled_temperature(folds, lambda o: o != g)
        curve = [ece_of_logits(z, y, t) for t in TEMPERATURES]
        line, = ax.plot(TEMPERATURES, curve, label=g)
        ax.plot([t_others], [ece_of_logits(z, y, t_others)], "o", color=line.get_color())
        print(f"| {g} | {t_own:.2f} ({ece_of_logits(z, y, t_own):.3f}) | "
              f"{ece_of_logits(z, y, t_others):.3f} ({t_others:.2f}) | {ece_of_logits(z, y, t_all):.3f} |")
    print(f"\nT fitted on all {len(folds)} folds' held-out clips: {t_all:.3f}")
    ax.axhline(TARGET_ECE, color="grey", linestyle="--", linewidth=1, label=f"target ECE {TARGET_ECE}")
    ax.axvline(t_all, color="black", linestyle=":", linewidth=1, label=f"T of all folds ({t_all:.2f})")
    ax.set_xlabel("temperature T (answers' logits divided by T)")
    ax.set_ylabel("ECE on the held-out engine (15 bins)")
    ax.set_title(f"{run.resolve().name}: held-out ECE against T (dots: T fitted on the other folds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
