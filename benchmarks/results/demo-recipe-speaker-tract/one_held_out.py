"""Models that held out one generator: accuracy, "surprise" answers, the temperature its clips ask for, and ECE
with no temperature and under a fixed one (with no second held-out engine, there is no "other" temperature;
1.513 is what the committed demo model serves, fitted on its folds' held-out engines).

    python benchmarks/results/demo-recipe-speaker-tract/one_held_out.py accented 1.513 build/ab/acc-base build/ab/k33f
"""

import json
import sys
from pathlib import Path

from ser_train.calibrate import ece_of_logits, fit_temperature, folded_temperature
from ser_train.logo import raw_logits


def main(generator: str, temperature: float, arms: list[Path]) -> None:
    print(f"| arm | accuracy | 'surprise' answers | own T (NLL) | ECE, no T | ECE, T = {temperature} | synthetic split |")
    print("|---|---|---|---|---|---|---|")
    for arm in arms:
        report = json.loads((arm / "eval" / generator / "report.json").read_text())
        logits, truth = raw_logits(report, folded_temperature(json.loads((arm / "training_log.json").read_text())))
        answers = logits.argmax(1)
        surprise = sorted(report["scores"][0]).index("surprise")  # raw_logits' column order
        synth = json.loads((arm / "eval" / "synth" / "report.json").read_text())["accuracy"]
        print(f"| {arm.name} | {(answers == truth).mean():.3f} ({(answers == truth).sum()}) | {(answers == surprise).sum()} "
              f"| {fit_temperature(logits, truth):.2f} | {ece_of_logits(logits, truth):.3f} "
              f"| {ece_of_logits(logits, truth, temperature):.3f} | {synth:.4f} |")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), [Path(a) for a in sys.argv[3:]])
