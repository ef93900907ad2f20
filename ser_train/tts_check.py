"""An independent text-to-speech check of a model: emotion prosody by rules that are not the training data's.

The demo model's leave-one-generator-out figures hold an *engine* out, but the
held-out engine still speaks the project's own rule set (``tts.emotion_prosody``,
derived from ``synth.PROFILES``). Anyone who makes an emotional text-to-speech
set of their own picks other rules. This check does that: each label's pitch
level, pitch range and rate as a textbook summary of vocal emotion gives them
(anger and joy higher, wider and faster; sadness lower, narrower and slower;
fear highest and fastest; disgust low and slow; surprise highest with the widest
range and a question's final rise), voices of each engine, and sentences that
no split of ``make data`` contains. It renders the set with the same engines
(``ser_train.tts.render``) and evaluates each model given on it, per engine and
over all (``ser-serve evaluate``: accuracy, macro-F1, ECE, confusion matrix,
reliability diagram), with a summary table side by side:

    python -m ser_train.tts_check --model-dir models/demo [--model-dir other] --out build/tts-check

Deterministic for ``--seed``; a rendered set is reused (delete ``<out>/set`` to redo it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_tools.encode import encode
from ser_train import evaluate, tts
from ser_train.dataset import read_examples, write_examples
from ser_train.synth import EMOTIONS

# Multiples of the voice's own pitch level, pitch range and rate; peak level; sentence-final punctuation.
RULES = {
    "neutral": tts.Prosody(1.00, 1.00, 1.00, 0.60, "."),
    "angry": tts.Prosody(1.15, 1.50, 1.15, 0.95, "!"),
    "happy": tts.Prosody(1.25, 1.70, 1.10, 0.80, "!"),
    "sad": tts.Prosody(0.85, 0.50, 0.75, 0.30, "."),
    "fear": tts.Prosody(1.35, 1.20, 1.25, 0.60, "."),
    "calm": tts.Prosody(0.95, 0.70, 0.85, 0.40, "."),
    "disgust": tts.Prosody(0.90, 1.20, 0.80, 0.50, "."),
    "surprise": tts.Prosody(1.40, 2.00, 1.00, 0.80, "?"),
}
SENTENCES = (
    "The new schedule was posted on the board.",
    "My phone is charging on the kitchen shelf.",
    "The parcel for number nine is at reception.",
    "We walked along the canal to the old mill.",
    "The form asks for your name and your address.",
    "He fixed the wheel of the bicycle on Sunday.",
    "The soup has carrots, onions and potatoes.",
    "They took the second train to the airport.",
)
VOICES = {
    "espeak-ng": ("en-us+m3", "en+f2", "en-gb-x-rp+m1", "en-us+f4", "en+Gene", "en-us+klatt", "en+linda",
                  "en-gb-scotland+m5"),
    "flite": tuple(tts.FLITE_VOICES),
    "festival": tuple(tts.FESTIVAL_VOICES),
    "hts": tuple(tts.HTS_VOICES),
    "accented": tuple(tts.ACCENTED_VOICES),
    "accented2": tuple(tts.ACCENTED2_VOICES),
}
# The engines checked by default: the five the demo model trains on, over which the README gives this check's
# figures (figures before 2026-12-07 are over the first four; `--engines ... accented2` adds the engine no model hears).
DEFAULT_ENGINES = ("espeak-ng", "flite", "festival", "hts", "accented")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_train.tts_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, action="append", required=True, help="checkpoint to check (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("build/tts-check"))
    parser.add_argument("--engines", nargs="+", default=list(DEFAULT_ENGINES), choices=tts.ENGINES)
    parser.add_argument("--per-label", type=int, default=30, help="clips per label and engine")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads for the evaluations (see ser-serve evaluate)")
    return parser.parse_args(argv)


def jobs_for(engine: str, per_label: int, rng: np.random.Generator) -> list[tts.Job]:
    """``per_label`` clips of each label: voices and sentences in turn, each clip varied a little and spoken by a
    'speaker' a little higher or lower and faster or slower than the voice (as people differ)."""
    voices, jobs = VOICES[engine], []
    for index in range(per_label * len(EMOTIONS)):
        emotion = EMOTIONS[index % len(EMOTIONS)]
        take = index // len(EMOTIONS)
        jobs.append(tts.Job(SENTENCES[take % len(SENTENCES)], tts.vary(RULES[emotion], rng), voices[take % len(voices)],
                            speaker_pitch=float(rng.uniform(0.9, 1.15)), speaker_rate=float(rng.uniform(0.95, 1.05))))
    return jobs


def render_set(engines, per_label: int, seed: int, out: Path) -> Path:
    """The check set as one parquet file (``generator`` column: the engine), made once."""
    path = out / "set" / "check.parquet"
    if path.exists():
        return path
    rows, generators = [], []
    for e_index, engine in enumerate(engines):
        rng = np.random.default_rng(seed * 100 + e_index)
        jobs, clips = jobs_for(engine, per_label, rng), []
        with tqdm(total=len(jobs), desc=f"render {engine}", unit="clip") as progress:
            for start in range(0, len(jobs), 40):  # the noise is drawn clip by clip, so chunks change nothing
                clips += tts.render(engine, jobs[start : start + 40], rng, snr_db=(35.0, 45.0))
                progress.update(len(clips) - progress.n)
        for i, clip in enumerate(clips):
            emotion = EMOTIONS[i % len(EMOTIONS)]
            rows.append((encode(clip, tts.SAMPLE_RATE, "wav"), f"{engine}/{i:05d}_{emotion}.wav", emotion))
            generators.append(engine)
    return write_examples(path, rows, {"generator": generators})


FIGURES = ("examples", "accuracy", "macro_f1", "ece", "mean_confidence")


def check(model_dir: Path, data: Path, engines, out: Path, threads: int = 0) -> dict:
    """Over all and per engine: accuracy, macro-F1, ECE, mean confidence of ``model_dir`` on the set (each clip
    classified once; the per-engine reports and plots are cut from the answers over all)."""
    every = evaluate.evaluate(evaluate.parse_args(["--data", str(data), "--model-dir", str(model_dir),
                                                   "--out", str(out / "all"), "--threads", str(threads)]))
    generators = [e.extra for e in read_examples(data, extra_column="generator")]
    figures = {}
    for engine in engines:
        scores = [s for s, g in zip(every["scores"], generators) if g == engine]
        result = evaluate.report([t for t, g in zip(every["truth"], generators) if g == engine],
                                 [max(s, key=s.get) for s in scores], [max(s.values()) for s in scores])
        evaluate.write_report(result, out / engine, f"{data.name} ({engine})")
        figures[engine] = {k: result[k] for k in FIGURES}
    figures["all"] = {k: every[k] for k in FIGURES}
    return figures


def table(results: dict) -> str:
    lines = ["| model | set | clips | accuracy | macro-F1 | ECE | mean confidence |", "|---|---|---|---|---|---|---|"]
    for model, figures in results.items():
        for name, f in figures.items():
            lines.append(f"| {model} | {name} | {f['examples']} | {f['accuracy']:.3f} | {f['macro_f1']:.3f} | "
                         f"{f['ece']:.3f} | {f['mean_confidence']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    data = render_set(args.engines, args.per_label, args.seed, args.out)
    results = {}
    for index, model_dir in enumerate(args.model_dir):
        results[str(model_dir)] = check(model_dir, data, args.engines, args.out / f"{index}-{model_dir.name}", args.threads)
    (args.out / "summary.json").write_text(json.dumps(
        {"engines": args.engines, "per_label": args.per_label, "seed": args.seed, "models": results}, indent=2))
    text = table(results)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
