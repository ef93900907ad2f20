"""Does pitch level alone move a fold model's answers? Each held-out clip is shifted in pitch and formants
(``ser_train.augment.shift_voice``, a larger or smaller voice) by a fixed number of semitones and classified
again by the fold model that never heard its engine.

    python benchmarks/results/demo-recipe-synth3/shift_probe.py build/data-acc/test.parquet \\
        build/logo-acc3/accented/model accented -6 -3 0
"""

import sys

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_serve.audio import load_waveform
from ser_train.augment import shift_voice
from ser_train.dataset import read_examples


def main(data: str, model_dir: str, engine: str, shifts: list[float]) -> None:
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    label2id = {label: int(i) for i, label in model.config.id2label.items()}
    clips = [(load_waveform(e.audio), label2id[e.label])
             for e in read_examples(data, extra_column="generator") if e.extra == engine]
    print(f"| shift (semitones) | accuracy on {engine} ({len(clips)} clips) | answers per label "
          f"({', '.join(model.config.id2label[i] for i in range(len(label2id)))}) |")
    print("|---|---|---|")
    for semitones in shifts:
        answers = []
        with torch.inference_mode():
            for x, _ in clips:
                shifted = shift_voice(x, semitones) if semitones else x
                inputs = extractor(shifted, sampling_rate=16_000, return_tensors="pt")
                answers.append(int(model(**inputs).logits.argmax(-1)))
        truth = np.array([y for _, y in clips])
        print(f"| {semitones:+g} | {(np.array(answers) == truth).mean():.3f} | "
              f"{np.bincount(answers, minlength=len(label2id)).tolist()} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [float(s) for s in sys.argv[4:]])
