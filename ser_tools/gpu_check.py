"""One short GPU check of the fast profiles, sized to a few minutes of device time.

    python -m ser_tools.gpu_check OUT.json                 # on a CUDA machine: base size, every row
    python -m ser_tools.gpu_check OUT.json --smoke         # anywhere: tiny model, a few clips (the test suite runs this)

Per precision profile (float32; bfloat16 autocast; float16 weights, CUDA
only) and batch size, in-process on the model path the workers use
(EmotionModel with the GPU batching budget):

- exactness: a clip's scores in an exact padded batch against alone (max
  abs), and the profile against float32 (largest change, argmax agreement);
- throughput: audio-s/s of exact length-aware batches; at one batch size
  also with padding ratio 1.5 instead of 4, and for a group-norm conv stack
  with that stack run per clip (the CPU's path) instead of masked over the
  padded batch (the GPU's);
- decoding: audio-s/s of decoding uploads (a wav/mp3/m4a mix) with 1..N
  decode processes (``ser_serve.decode_pool``), next to the model's rate:
  decoding must keep up with the GPU;
- the served path: a worker started as the engines start it (shipped GPU
  settings; ``auto`` precision, then float16) answering the uploads, against
  a CPU float32 worker's answers.

The base-size checkpoint is made locally (random init): no network. Every
stage is bounded by ``--budget-seconds`` in all; what did not fit is
reported as skipped, never guessed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ser_serve.batching import BatchBudget
from ser_serve.model import precision
from ser_serve.model.calibration import voice
from ser_serve.model.emotion_model import EmotionModel
from ser_tools.clipmix import ClipMix, durations
from ser_tools.encode import encode
from ser_train.presets import make_preset_checkpoint


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 3) -> float:
    """Median seconds of ``repeats`` calls (after the caller's warm-up)."""
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def exactness(model: EmotionModel, features: list[np.ndarray], reference: np.ndarray) -> dict:
    """Batch vs alone in the current profile, and the profile vs float32's ``reference`` rows."""
    together = model.predict_proba(features)
    alone = np.concatenate([model.predict_proba([f]) for f in features])
    return {
        "batch_vs_alone_max_abs": float(np.abs(together - alone).max()),
        "vs_float32_max_change": float(np.abs(together - reference).max()),
        "vs_float32_argmax_agreement": float(np.mean(together.argmax(1) == reference.argmax(1))),
        "finite": bool(np.isfinite(together).all()),
    }


def batch_rate(model: EmotionModel, features: list[np.ndarray], batch: int, audio: float, device: str, repeats: int,
               padding_ratio: float = 4.0) -> float:
    """Audio-s/s of ``features`` sent ``batch`` at a time (in arrival order, as an engine batches them)."""
    model.budget = BatchBudget(max_batch_samples=batch * 5 * 16_000, max_padding_ratio=padding_ratio)
    chunks = [features[i: i + batch] for i in range(0, len(features), batch)]
    try:
        return audio / timed(lambda: [model.predict_proba(c) for c in chunks], device, repeats)
    finally:
        model.budget = BatchBudget(max_batch_samples=10**9, max_padding_ratio=4.0)


def variants(model: EmotionModel, features: list[np.ndarray], batch: int, audio: float, device: str,
             repeats: int) -> dict:
    """Audio-s/s at ``batch`` with one thing changed: padding ratio 1.5 instead of 4 (less padding, smaller
    passes), and the group-norm conv stack run per clip (the CPU's path) instead of masked."""
    rows = {"batch": batch, "padding_ratio_1.5": batch_rate(model, features, batch, audio, device, repeats, 1.5)}
    encoder = model.model.base_model.feature_extractor
    if getattr(encoder, "maskable", False):
        encoder.maskable = False
        try:
            rows["per_clip_conv"] = batch_rate(model, features, batch, audio, device, repeats)
        finally:
            encoder.maskable = True
    return rows


def decode_rates(uploads: list[tuple[bytes, float]], model: EmotionModel, processes: list[int], device: str) -> dict:
    """Audio-s/s of decoding + feature extraction of ``uploads`` with each number of decode processes."""
    from ser_serve.classifier import EmotionClassifier
    from ser_serve.decode_pool import DecodePool

    preparer = EmotionClassifier(model).preparer
    audio = sum(seconds for _, seconds in uploads)
    rates = {}
    for count in processes:
        pool = DecodePool(preparer, count)
        try:
            pool.prepare_all([data for data, _ in uploads])  # starts the processes, each imports its decoders
            rates[str(count)] = audio / timed(lambda: pool.prepare_all([data for data, _ in uploads]), device, 3)
        finally:
            pool.close()
    return rates


def served_path(checkpoint: Path, uploads: list[tuple[bytes, float]], gpu: bool, auto_seconds: float) -> dict:
    """The worker's own start-up and batch path (``ser_serve.worker``) with the shipped GPU settings and
    ``auto`` precision, then ``float16``: what each ran, and its answers against a CPU float32 worker's."""
    from ser_serve import worker
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG, load_model_config
    from ser_serve.settings import settings_from_model_yaml

    data = [upload for upload, _ in uploads]
    audio = sum(seconds for _, seconds in uploads)
    reference = worker.start_classifier(checkpoint, settings_from_model_yaml(load_model_config(DEFAULT_MODEL_CONFIG)))
    expected = [scores(answer) for answer in worker.answer_uploads(reference, data)]
    del reference
    rows = {}
    for profile in ("auto", "float16"):
        config = load_model_config(DEFAULT_MODEL_CONFIG)
        config["ser"]["precision"] = {"profile": profile, "auto_seconds": auto_seconds}
        settings = settings_from_model_yaml(config)
        served = worker.start_classifier(checkpoint, settings, gpu_id=0 if gpu else None)
        decoder = worker.decode_pool(served, settings, 0 if gpu else None)
        try:
            worker.answer_uploads(served, data, decoder=decoder)  # warm-up, starts the decode processes
            answers = []
            seconds = timed(lambda: answers.append([scores(a) for a in worker.answer_uploads(served, data, decoder=decoder)]),
                            "cuda" if gpu else "cpu", 3)
            answers = answers[-1]
        finally:
            decoder.close()
        rows[profile] = {
            "device": str(served.model.device), "dtype": str(served.model.dtype),
            "decode_processes": decoder.processes, "precision": served.model.precision_choice.as_dict(),
            "uploads": len(data), "audio_s_per_s_decode_and_model": audio / seconds,
            "max_change_vs_cpu_float32": max(max(abs(got[label] - score) for label, score in want.items())
                                             for got, want in zip(answers, expected)),
            "same_top_label": float(np.mean([max(got, key=got.get) == max(want, key=want.get)
                                             for got, want in zip(answers, expected)])),
        }
    return rows


def scores(answer: dict) -> dict:
    """{label: score} of a served answer (raises the upload's exception if it failed)."""
    if isinstance(answer, Exception):
        raise answer
    return {item["label"]: item["score"] for item in answer["results"]}


STAGES = ("profiles", "decode", "served")


def run(out_path: Path, smoke: bool, budget_seconds: float, checkpoint_dir: Path, stages=STAGES) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    deadline = time.monotonic() + budget_seconds
    report: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                    "torch": torch.__version__, "cpus": os.cpu_count(), "smoke": smoke, "skipped": []}
    checkpoint = make_preset_checkpoint("tiny" if smoke else "base", checkpoint_dir)
    model = EmotionModel(checkpoint, device=device, budget=BatchBudget(max_batch_samples=10**9, max_padding_ratio=4.0))
    mix = ClipMix(count=12 if smoke else 256)
    seconds = durations(mix, np.random.default_rng(1))
    waveforms = [voice(float(s), seed=i) for i, s in enumerate(seconds)]
    features = [model.features(w) for w in waveforms]
    audio = float(sum(seconds))
    report["clips"] = {"count": len(features), "audio_s": audio}
    report["group_norm_conv"] = "masked over the padded batch" if device == "cuda" else "per clip"
    probe = features[: 8 if not smoke else 4]  # mixed lengths: the padded path
    reference = model.predict_proba(probe)
    batch_sizes = (4, 8) if smoke else (8, 32, 64, 128, 256)
    repeats = 1 if smoke else 3
    profiles = ["float32", "bfloat16"] + (["float16"] if device == "cuda" else [])
    report["profiles"] = {}
    for profile in profiles if "profiles" in stages else ():
        if time.monotonic() > deadline:
            report["skipped"].append(f"profile {profile}: over the time budget")
            continue
        back = precision.apply(model, profile)
        try:
            row = exactness(model, probe, reference)
            row["audio_s_per_s"] = {}
            model.predict_proba(features[:8])  # warm-up in this profile
            for batch in batch_sizes:
                if time.monotonic() > deadline:
                    report["skipped"].append(f"{profile} batch {batch}: over the time budget")
                    continue
                row["audio_s_per_s"][str(batch)] = batch_rate(model, features, batch, audio, device, repeats)
            if time.monotonic() < deadline:
                row["variants_audio_s_per_s"] = variants(model, features, batch_sizes[-2], audio, device, repeats)
            report["profiles"][profile] = row
        finally:
            back()
    formats = ("wav", "mp3", "m4a")
    count = 6 if smoke else 256
    uploads = [(encode(waveforms[i], 16_000, formats[i % 3]), float(seconds[i])) for i in range(min(count, len(waveforms)))]
    if "decode" not in stages:
        pass
    elif time.monotonic() < deadline:
        processes = [1, 2] if smoke else [1, 2, 4, 8, min(16, os.cpu_count() or 1)]
        report["decode_audio_s_per_s"] = decode_rates(uploads, model, sorted(set(processes)), device)
    else:
        report["skipped"].append("decode: over the time budget")
    if "served" not in stages:
        pass
    elif time.monotonic() < deadline:
        del model  # the served path loads its own workers
        report["served_path"] = served_path(checkpoint, uploads, device == "cuda", auto_seconds=2.0 if smoke else 20.0)
    else:
        report["skipped"].append("served path: over the time budget")
    report["seconds"] = round(budget_seconds - (deadline - time.monotonic()), 1)
    print(json.dumps(report, indent=2))
    Path(out_path).write_text(json.dumps(report, indent=2))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny model and a few clips, CPU allowed")
    parser.add_argument("--budget-seconds", type=float, default=300.0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/tmp/ser-gpu-check"))
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    args = parser.parse_args(argv)
    stages = tuple(args.stages.split(","))
    if set(stages) - set(STAGES):
        parser.error(f"unknown stage(s): {', '.join(sorted(set(stages) - set(STAGES)))}")
    run(args.out, args.smoke, args.budget_seconds, args.checkpoint_dir / ("tiny" if args.smoke else "base"), stages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
