"""ser_train.logo's summary for fold models trained outside it (two folds side by side by hand).

Each GENERATOR=MODEL_DIR is linked as <out>/<GENERATOR>/model, scored on that generator's test clips
(logo.held_out_row: accuracy, ECE before and after the fold's validation T) and written as its fold.json
(kept if it exists, as logo keeps a finished fold); then ser_train.logo summarises them, with each fold's
ECE under the T fitted on the other folds' held-out clips (it trains nothing: every fold has its fold.json).

    python benchmarks/results/demo-recipe-six-e5/assemble.py --data build/data-ab --out build/logo-six-e5 \
        accented=build/ab/acc-base hts=build/ab/fold-hts ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ser_train import logo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder whose test.parquet has the held-out clips")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("folds", nargs="+", metavar="GENERATOR=MODEL_DIR")
    args = parser.parse_args()
    generators = []
    for spec in args.folds:
        generator, model = spec.split("=", 1)
        generators.append(generator)
        fold = args.out / generator
        if (fold / "fold.json").exists():
            continue
        fold.mkdir(parents=True, exist_ok=True)
        if not (fold / "model").exists():
            (fold / "model").symlink_to(Path(model).resolve())
        log = json.loads((fold / "model" / "training_log.json").read_text())
        row = logo.held_out_row(generator, fold / "model", fold / "eval", log["calibration"], args.data / "test.parquet")
        row.update(train_clips=log["train_clips"], best_val_accuracy=log["best_val_accuracy"],
                   train_minutes=round(sum(epoch["seconds"] for epoch in log["history"]) / 60, 1))
        (fold / "fold.json").write_text(json.dumps(row, indent=2))
    return logo.main(["--data", str(args.data), "--out", str(args.out), "--holdout", *generators])


if __name__ == "__main__":
    raise SystemExit(main())
