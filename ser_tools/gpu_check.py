"""GPU profile check: exactness, fp16 tolerance and throughput of the base-size model on CUDA.

Run on a machine with a GPU (python benchmarks/gpu_check.py OUT.json). It
makes the base-size checkpoint locally (random init), so it needs no network.
In-process only: it measures the model path the handler uses on GPU.
"""

import json
import sys
import time

import numpy as np
import torch

from ser_serve.batching import BatchBudget
from ser_train.presets import make_preset_checkpoint
from ser_tools.clipmix import ClipMix, durations
from ser_serve.model.emotion_model import EmotionModel
from ser_serve.model.calibration import voice


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu only to dry-run this script
SCALE = 1 if DEVICE == "cuda" else 8  # fewer trials and clips on a CPU dry run


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats=3):
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def padded_forward(model, features):
    width = max(len(f) for f in features)
    batch = torch.zeros(len(features), width, dtype=model.dtype, device=model.device)
    for i, f in enumerate(features):
        batch[i, : len(f)] = torch.from_numpy(f).to(model.device, model.dtype)
    with torch.inference_mode():
        return torch.softmax(model.model(input_values=batch).logits.float(), -1).cpu().numpy()


def main(out_path):
    report = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu", "torch": torch.__version__}
    checkpoint = make_preset_checkpoint("base", "/tmp/base")
    model = EmotionModel(checkpoint, device=DEVICE, budget=BatchBudget(max_batch_samples=10**7, max_padding_ratio=100))
    rng = np.random.default_rng(0)

    worst, worst_padded = 0.0, 0.0
    for trial in range(20 // SCALE):
        seconds = rng.uniform(0.05, 5.0, size=int(rng.integers(2, 9)))
        features = [model.features(voice(s, seed=trial * 10 + i)) for i, s in enumerate(seconds)]
        alone = np.stack([model.predict_proba([f])[0] for f in features])
        worst = max(worst, float(np.abs(model.predict_proba(features) - alone).max()))
        worst_padded = max(worst_padded, float(np.abs(padded_forward(model, features) - alone).max()))
    report["fp32_exact_batch_vs_alone_max_abs"] = worst
    report["fp32_pad_to_longest_vs_alone_max_abs"] = worst_padded

    mix = ClipMix(count=64 // SCALE)
    clip_seconds = durations(mix, np.random.default_rng(1))
    features = [model.features(voice(float(s), seed=i)) for i, s in enumerate(clip_seconds)]
    audio = float(sum(clip_seconds))
    model.predict_proba(features[:8])  # warm-up
    throughput = report["audio_s_per_s"] = {}
    for batch in (1, 8, 32):
        chunks = [features[i : i + batch] for i in range(0, len(features), batch)]
        for ratio in (1.25, 4.0):
            model.budget = BatchBudget(max_batch_samples=batch * 5 * 16_000, max_padding_ratio=ratio)
            throughput[f"fp32_exact_ratio{ratio}_batch{batch}"] = audio / timed(
                lambda: [model.predict_proba(c) for c in chunks])
        if batch > 1:
            throughput[f"fp32_padded_batch{batch}"] = audio / timed(lambda: [padded_forward(model, c) for c in chunks])
    model.budget = BatchBudget(max_batch_samples=32 * 5 * 16_000, max_padding_ratio=4.0)

    calibration = [voice(s, seed=s_i) for s_i, s in enumerate((1.3, 2.5, 4.0))]
    if DEVICE == "cpu":
        print(json.dumps(report, indent=2))
        return
    difference = model.try_half_precision(1e-3, calibration)
    report["fp16_max_prob_difference_on_calibration"] = difference
    report["fp16_kept"] = model.dtype == torch.float16
    model.model.half()
    model.dtype = torch.float16
    full_reference = EmotionModel(checkpoint, device=DEVICE)
    half_rows = model.predict_proba(features[:16])
    full_rows = full_reference.predict_proba(features[:16])
    report["fp16_vs_fp32_max_abs_on_16_clips"] = float(np.abs(half_rows - full_rows).max())
    for batch in (8, 32):
        chunks = [features[i : i + batch] for i in range(0, len(features), batch)]
        throughput[f"fp16_exact_ratio4.0_batch{batch}"] = audio / timed(lambda: [model.predict_proba(c) for c in chunks])
    report["clips"] = {"count": len(features), "audio_s": audio}
    print(json.dumps(report, indent=2))
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
