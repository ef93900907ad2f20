"""How far prosody alone carries across voice generators: a yardstick for the demo model's held-out figures.

Eleven hand-made measures per clip — pitch level, spread, range and final
movement (``ser_train.prosody.frame_targets``' pitch track), voiced share,
energy-peak rate, duration, loudness spread, spectral centroid — and a
gradient-boosted classifier (scikit-learn) on them, evaluated as the demo
model is: leave one generator out (train on the others' train and validation
clips, test on the held-out generator's test clips), and, for comparison,
trained and tested on that generator alone. No neural network and nothing
tuned: it says how much of each label's rule-set prosody survives in an
unheard engine's rendering, so the model's own held-out accuracy can be read
against it.

    python -m ser_train.prosody_probe --data build/data --out build/prosody-probe
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ser_serve.audio import load_waveform
from ser_train.dataset import GENERATORS, read_examples
from ser_train.prosody import F0_CENTRE, F0_SCALE, frame_targets

HOP = 320
MEASURES = ("pitch_median", "pitch_p10", "pitch_p90", "pitch_range", "pitch_spread", "pitch_final", "voiced_share",
            "peak_rate", "seconds", "loudness_spread", "centroid_hz")


# Measures that a pitch-and-formant voice shift (``ser_train.augment.shift_voice``) moves: pitch level in semitones
# moves by the shift, the spectral centroid scales with the formants; the rest (range, final movement, rate,
# loudness, duration) keep their values, as the shift keeps the prosody's shape.
PITCH_LEVEL = [MEASURES.index(name) for name in ("pitch_median", "pitch_p10", "pitch_p90")]
CENTROID = MEASURES.index("centroid_hz")


def after_voice_shift(rows: np.ndarray, semitones: np.ndarray) -> np.ndarray:
    """Measures (clips x :data:`MEASURES`) of the clips as shifted by ``semitones`` each (0: unchanged)."""
    rows = np.array(rows, dtype=np.float64)
    semitones = np.asarray(semitones, dtype=np.float64)
    rows[:, PITCH_LEVEL] += semitones[:, None]
    rows[:, CENTROID] *= 2.0 ** (semitones / 12.0)
    return rows


def measures(audio: bytes) -> list[float]:
    """The clip's prosodic measures, in :data:`MEASURES`' order."""
    return measures_of(load_waveform(audio))


def measures_of(x: np.ndarray) -> list[float]:
    """:func:`measures` of a decoded 16 kHz clip."""
    import librosa

    targets = frame_targets(x, HOP)
    voiced, energy = targets[:, 1] > 0, targets[:, 2]
    pitch = targets[voiced, 0] * F0_SCALE + F0_CENTRE if voiced.sum() >= 3 else np.zeros(3)
    speech = np.flatnonzero(energy > 0.5)  # within 25 dB of the loudest frame
    seconds = (speech[-1] - speech[0] + 1) * HOP / 16_000 if len(speech) else 0.0
    envelope = np.convolve(energy, np.ones(5) / 5, mode="same")
    peaks = librosa.util.peak_pick(envelope, pre_max=5, post_max=5, pre_avg=10, post_avg=10, delta=0.02, wait=8)
    centroid = librosa.feature.spectral_centroid(y=x, sr=16_000, n_fft=1024, hop_length=HOP, center=False)[0]
    loud = energy[: len(centroid)] > 0.5
    tail = pitch[int(0.8 * len(pitch)):]
    return [float(np.median(pitch)), float(np.percentile(pitch, 10)), float(np.percentile(pitch, 90)),
            float(np.percentile(pitch, 90) - np.percentile(pitch, 10)), float(np.std(pitch)),
            float(np.median(tail) - np.median(pitch)), float(voiced.mean()), len(peaks) / max(seconds, 0.3),
            float(seconds), float(np.std(energy[energy > 0.5])) if len(speech) else 0.0,
            float(np.median(centroid[loud])) if loud.any() else 0.0]


def table_of(path: Path, workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    examples = read_examples(path, extra_column="generator")
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(measures, [e.audio for e in examples], chunksize=32))
    return np.array(rows), np.array([e.label for e in examples]), np.array([e.extra for e in examples])


def classifier(seed: int = 0):
    """The probe's model: gradient-boosted trees, untuned."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, classes: int, seed: int = 0, folds: int = 5) -> np.ndarray:
    """Each row's label probabilities (columns 0..classes-1) from trees fitted on the other folds' rows only."""
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(np.bincount(y).min()))  # each fold needs every label once
    if folds < 2:
        raise ValueError("the probe's out-of-fold probabilities need at least two clips of every label")
    probabilities = np.zeros((len(y), classes))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = classifier(seed).fit(x[fit], y[fit])
        probabilities[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    return probabilities


def probe(data: Path, workers: int = 2, seed: int = 0) -> dict:
    parts = [table_of(data / f"{split}.parquet", workers) for split in ("train", "validation")]
    x_train, y_train, g_train = (np.concatenate(p) for p in zip(*parts))
    x_test, y_test, g_test = table_of(data / "test.parquet", workers)

    def accuracy(train_rows, test_rows) -> float:
        model = classifier(seed).fit(x_train[train_rows], y_train[train_rows])
        return float((model.predict(x_test[test_rows]) == y_test[test_rows]).mean())

    rows = []
    for generator in [g for g in GENERATORS if g in set(g_test)]:
        test = g_test == generator
        rows.append({"generator": generator, "test_clips": int(test.sum()),
                     "held_out_accuracy": accuracy(g_train != generator, test) if generator != "synth" else None,
                     "own_accuracy": accuracy(g_train == generator, test)})
    return {"measures": list(MEASURES), "classifier": "HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05)",
            "generators": rows, "chance": 1 / len(set(y_train))}


def markdown(result: dict) -> str:
    lines = ["| generator | test clips | trained without it (held out) | trained on it alone |", "|---|---|---|---|"]
    for r in result["generators"]:
        held = "-" if r["held_out_accuracy"] is None else f"{r['held_out_accuracy']:.3f}"
        lines.append(f"| {r['generator']} | {r['test_clips']} | {held} | {r['own_accuracy']:.3f} |")
    return "\n".join(lines) + f"\n\nChance: {result['chance']:.3f}. Measures: {', '.join(result['measures'])}.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_train.prosody_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("build/data"), help="folder with train/validation/test.parquet")
    parser.add_argument("--out", type=Path, default=Path("build/prosody-probe"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    result = probe(args.data, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    (args.out / "summary.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
