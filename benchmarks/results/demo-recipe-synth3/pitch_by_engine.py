"""Median pitch (semitones above 100 Hz) and pitch range (10th to 90th percentile, semitones) of each engine's
test clips, label by label, with the prosody probe's measures (``ser_train.prosody_probe.measures_of``).

    python benchmarks/results/demo-recipe-synth3/pitch_by_engine.py build/data-acc/test.parquet
"""

import sys
from collections import defaultdict

import numpy as np

from ser_serve.audio import load_waveform
from ser_train.dataset import read_examples
from ser_train.prosody_probe import measures_of

ENGINES = ("accented", "espeak-ng", "flite", "festival", "hts", "synth")


def main(path: str) -> None:
    pitch = defaultdict(list)
    for example in read_examples(path, extra_column="generator"):
        if example.extra in ENGINES:
            m = measures_of(load_waveform(example.audio))
            pitch[example.extra, example.label].append((m[0], m[3]))  # median, p90 - p10
    labels = sorted({label for _, label in pitch})
    print("| engine | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for engine in ENGINES:
        cells = [np.median(np.array(pitch[engine, label]), axis=0) for label in labels]
        print(f"| {engine} | " + " | ".join(f"{level:+.0f} / {spread:.0f}" for level, spread in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
