"""Precision profiles side by side, in-process: throughput on the same clips and the change against float32.

    python -m ser_tools.profiles --checkpoint build/checkpoints/base --checkpoint models/demo

Each profile runs unguarded (this measures what the guard would see) in its
own copy of the model; the profiles take turns batch by batch, so a shared,
noisy host slows them alike and the ratios stay comparable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ser_serve.audio import TARGET_SAMPLE_RATE, load_waveform
from ser_serve.model import precision
from ser_serve.model.emotion_model import EmotionModel
from ser_serve.settings import PrecisionGuard
from ser_serve.workspace import BUILD_DIR
from ser_tools.clipmix import ClipMix, load_or_make_clips


def compare_profiles(checkpoint: str | Path, waveforms, batch_size: int = 8, rounds: int = 3, log=print) -> dict:
    """Per profile: audio-s/s of exact batches (median of ``rounds``), ratio to float32, max change and agreement."""
    cpu = EmotionModel(checkpoint, device="cpu").device
    models = {name: EmotionModel(checkpoint, device="cpu")
              for name in (precision.FLOAT32, *precision.auto_candidates(cpu))}
    for name, model in models.items():
        precision.apply(model, name)
    features = [models[precision.FLOAT32].features(w) for w in waveforms]
    audio = sum(len(f) for f in features) / TARGET_SAMPLE_RATE
    scores = {name: model.predict_proba(features) for name, model in models.items()}  # also the warm-up
    seconds = {name: [] for name in models}
    batches = [features[i : i + batch_size] for i in range(0, len(features), batch_size)]
    for _ in range(rounds):
        spent = dict.fromkeys(models, 0.0)
        for batch in batches:  # interleaved per batch: a burst of load on a shared host hits every profile
            for name, model in models.items():
                started = time.perf_counter()
                model.predict_proba(batch)
                spent[name] += time.perf_counter() - started
        for name in models:
            seconds[name].append(spent[name])
    reference = scores[precision.FLOAT32]
    results = {}
    for name in models:
        median = statistics.median(seconds[name])
        guard = precision.check(name, reference, scores[name], PrecisionGuard())
        results[name] = {
            "audio_s_per_s": audio / median,
            "vs_float32": statistics.median(seconds[precision.FLOAT32]) / median,
            "max_probability_change": guard.max_change,
            "argmax_agreement": guard.agreement,
            "round_seconds": seconds[name],
        }
        log(f"  {name:>8}: {audio / median:6.2f} audio-s/s, {results[name]['vs_float32']:.2f}x float32, "
            f"max change {guard.max_change:.1e}, agreement {guard.agreement:.3f} "
            f"(rounds {', '.join(f'{s:.2f}' for s in seconds[name])} s)")
    return {"clips": len(features), "audio_s": audio, "batch_size": batch_size, "rounds": rounds, "profiles": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tools.profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, help="repeat for several checkpoints")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(BUILD_DIR / "clips"))
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = load_or_make_clips(ClipMix(count=args.clips, seed=args.seed), args.cache_dir)
    waveforms = [load_waveform(clip.data) for clip in clips]
    report = {}
    for checkpoint in args.checkpoint:
        print(f"{checkpoint}: {len(clips)} clips, {sum(len(w) for w in waveforms) / TARGET_SAMPLE_RATE:.1f} s, "
              f"exact batches of {args.batch_size}, {args.threads} threads, median of {args.rounds} rounds", flush=True)
        report[checkpoint] = compare_profiles(checkpoint, waveforms, args.batch_size, args.rounds)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
