"""Each finished fold of a new recipe scored under a temperature fitted on the other four engines' held-out
clips, taking those folds from the new run where it has them and from an older recipe's run where it does not.

A stand-in for the five-fold figure while a recipe's folds are still being trained; ``ser_train.logo``'s own
summary fits each fold's temperature on the new run's other folds only.

    python benchmarks/results/demo-recipe-synth3/proxy_temperature.py build/logo-acc3 build/logo-acc-e8
"""

import sys
from pathlib import Path

import numpy as np
from scipy.special import softmax

from ser_train.calibrate import expected_calibration_error, fit_temperature

sys.path.insert(0, str(Path(__file__).parent))
from posthoc_bias import held_out_logits  # noqa: E402 (the folds' logits, loaded as the bias check loads them)


def main(new_run: Path, old_run: Path) -> None:
    new, old = held_out_logits(new_run), held_out_logits(old_run)
    print("| held out | accuracy | ECE, T from the other folds (T) | other folds from the older run | answers per label |")
    print("|---|---|---|---|---|")
    for g, (z, y) in new.items():
        others = {o: new.get(o, old[o]) for o in sorted(set(old) | set(new)) if o != g}
        t = fit_temperature(np.concatenate([z for z, _ in others.values()]),
                            np.concatenate([y for _, y in others.values()]))
        p = softmax(z / t, axis=-1)
        correct = p.argmax(-1) == y
        print(f"| {g} | {correct.mean():.3f} | {expected_calibration_error(p.max(-1), correct):.3f} ({t:.2f}) | "
              f"{', '.join(o for o in others if o not in new)} | {np.bincount(p.argmax(-1), minlength=p.shape[1]).tolist()} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
