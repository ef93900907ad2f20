"""Each fold's held-out ECE as a function of one shared temperature: is there a T that calibrates them all?

Every fold directory holds ``fold.json`` and its held-out ``report.json`` (directly or under ``eval/``, as
``ser_train.logo`` writes it). The scores are un-folded to raw logits (``ser_train.logo.raw_logits``) and
re-scored at each T of a grid. Prints a table and writes a plot with one curve per fold and the 0.10 line.

    python benchmarks/results/demo-recipe-pitch12/ece_by_temperature.py out.png build/logo-acc3u/accented \
        benchmarks/results/demo-recipe-pitch6/festival benchmarks/results/demo-recipe-accented/hts
"""

import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

from ser_train.calibrate import ece_of_logits
from ser_train.logo import raw_logits

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the headless backend)

GRID = np.round(np.arange(1.0, 2.51, 0.05), 2)
TARGET = 0.10


def fold_logits(fold_dir: Path):
    fold = json.loads((fold_dir / "fold.json").read_text())
    report = fold_dir / "eval" / "report.json"
    report = report if report.exists() else fold_dir / "report.json"
    return raw_logits(json.loads(report.read_text()), fold["temperature"])


def main(png: Path, fold_dirs: list[Path]) -> None:
    curves = {"/".join(d.parts[-2:]): [ece_of_logits(*fold_logits(d), temperature=t) for t in GRID] for d in fold_dirs}
    shown = GRID[::4]
    print("| fold | " + " | ".join(f"T={t:.1f}" for t in shown) + " | lowest and highest T with ECE ≤ 0.10 (gaps possible) |")
    print("|---|" + "---|" * (len(shown) + 1))
    for name, ece in curves.items():
        ok = GRID[np.array(ece) <= TARGET]
        span = f"{ok.min():.2f} and {ok.max():.2f}" if len(ok) else "none"
        print(f"| {name} | " + " | ".join(f"{e:.3f}" for e in ece[::4]) + f" | {span} |")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ece in curves.items():
        ax.plot(GRID, ece, marker=".", label=name)
    ax.axhline(TARGET, color="k", linestyle="--", label="target (0.10)")
    ax.set_xlabel("temperature shared by every fold")
    ax.set_ylabel("held-out ECE (15 bins)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
