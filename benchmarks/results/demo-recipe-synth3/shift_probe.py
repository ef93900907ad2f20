"""Does pitch level alone move a fold model's answers? Each held-out clip is shifted by a fixed number of
semitones and classified again by the fold model that never heard its engine. Two ways to shift:

- ``vocoder``: pitch and formants together (``ser_train.augment.shift_voice``, a larger or smaller voice);
- ``world``: the pitch contour alone, resynthesised by WORLD with the spectral envelope kept (as
  ``ser_train.tts`` makes the hts and accented clips). Its 0 row is the plain resynthesis.

    python benchmarks/results/demo-recipe-synth3/shift_probe.py build/data-acc/test.parquet \\
        build/logo-acc3/accented/model accented vocoder 0 -3 -6
"""

import sys

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_serve.audio import load_waveform
from ser_train.augment import shift_voice
from ser_train.dataset import read_examples


def world_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    import pyworld

    x = x.astype(np.float64)
    f0, times = pyworld.dio(x, 16_000)
    f0 = pyworld.stonemask(x, f0, times, 16_000)
    envelope, aperiodicity = pyworld.cheaptrick(x, f0, times, 16_000), pyworld.d4c(x, f0, times, 16_000)
    y = pyworld.synthesize(f0 * 2 ** (semitones / 12), envelope, aperiodicity, 16_000)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


SHIFTS = {"vocoder": lambda x, s: shift_voice(x, s) if s else x, "world": world_pitch}


def main(data: str, model_dir: str, engine: str, how: str, shifts: list[float]) -> None:
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
                shifted = SHIFTS[how](x, semitones)
                inputs = extractor(shifted, sampling_rate=16_000, return_tensors="pt")
                answers.append(int(model(**inputs).logits.argmax(-1)))
        truth = np.array([y for _, y in clips])
        print(f"| {how} {semitones:+g} | {(np.array(answers) == truth).mean():.3f} | "
              f"{np.bincount(answers, minlength=len(label2id)).tolist()} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], [float(s) for s in sys.argv[5:]])
