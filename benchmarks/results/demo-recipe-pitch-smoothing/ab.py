"""Models that held out the same two generators, side by side: accuracy, how sure they are, and ECE under
the temperature that the *other* held-out generator asks for (the leave-one-generator-out protocol's honest
ECE, here with both held-out generators scored by one model).

Each arm directory holds ``training_log.json`` (its folded temperature) and ``eval/<generator>/report.json``
(``ser-serve evaluate --generator G``, per-clip scores).

    python benchmarks/results/demo-recipe-pitch-smoothing/ab.py build/ab/base build/ab/ps accented festival
    (any number of arm directories, then the held-out generators' names)
"""

import json
import sys
from pathlib import Path

import numpy as np

from ser_train.calibrate import ece_of_logits, fit_temperature, folded_temperature
from ser_train.logo import raw_logits


def held_out(arm: Path, generator: str):
    report = json.loads((arm / "eval" / generator / "report.json").read_text())
    return raw_logits(report, folded_temperature(json.loads((arm / "training_log.json").read_text())))


def confidence(logits, temperature=1.0):
    z = logits / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).max(1).mean()


def main(arms: list[Path], generators: list[str]) -> None:
    print("| arm | held out | accuracy | 'surprise' answers | mean confidence, no T | own T (NLL) | "
          "T of the other | ECE under it | ECE, no T |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arm in arms:
        data = {g: held_out(arm, g) for g in generators}
        own = {g: fit_temperature(*data[g]) for g in generators}
        for g, (logits, truth) in data.items():
            other = [o for o in generators if o != g]
            t_other = fit_temperature(np.concatenate([data[o][0] for o in other]),
                                      np.concatenate([data[o][1] for o in other]))
            answers = logits.argmax(1)
            surprise = int((answers == 7).sum())  # labels sorted: surprise is the last of eight
            print(f"| {arm.name} | {g} | {(answers == truth).mean():.3f} ({(answers == truth).sum()}) "
                  f"| {surprise} | {confidence(logits):.3f} | {own[g]:.2f} | {t_other:.2f} "
                  f"| {ece_of_logits(logits, truth, t_other):.3f} | {ece_of_logits(logits, truth):.3f} |")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:] if Path(a).is_dir()], [g for g in sys.argv[1:] if not Path(g).is_dir()])
