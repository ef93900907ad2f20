"""Timeline plot (``ser-serve timeline --plot``) and the long-recording benchmark (``make bench-timeline``).

The benchmark synthesises a two-speaker call (ser_train/synth.py: known
turns and emotions, pauses between), encodes it as 8 kHz stereo mu-law WAV
(telephony), analyses it in-process with one lane per channel and reports
seconds of processing per hour of audio, the peak of Python/numpy memory
while analysing, how much the process's peak resident memory grew, and how
many turns' emotions the timeline got right. ``--busy`` makes both channels
talk all the time instead (the most segments a recording can give: the
worst case for time and memory), written to ``timeline-busy.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def plot_timeline(answer: dict, out: str | Path, title: str = "", truth=None) -> Path:
    """Draw one lane per channel: a bar per segment, coloured by its dominant label, as tall as its confidence.

    ``truth``: optional ``ser_train.synth.Turn`` list, drawn as a thin strip
    above each lane in the colour of the emotion actually spoken.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = sorted({r["label"] for s in answer["segments"] for r in s["results"]} | {t.emotion for t in truth or []})
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    lanes = answer["channels"]
    figure, axis = plt.subplots(figsize=(12, 1.2 + 1.1 * lanes))
    for segment in answer["segments"]:
        dominant = segment["dominant"]
        axis.add_patch(plt.Rectangle((segment["start"], segment["channel"]), segment["end"] - segment["start"],
                                     0.75 * dominant["score"], color=colours[dominant["label"]], alpha=0.55, lw=0))
    for turn in truth or []:
        axis.add_patch(plt.Rectangle((turn.start, turn.channel + 0.8), turn.end - turn.start, 0.12,
                                     color=colours[turn.emotion], lw=0))
    axis.set_xlim(0, answer["duration"])
    axis.set_ylim(0, lanes)
    axis.set_yticks([lane + 0.45 for lane in range(lanes)])
    axis.set_yticklabels([f"channel {lane}" if lanes > 1 else "mix" for lane in range(lanes)])
    axis.set_xlabel("seconds")
    used = sorted({s["dominant"]["label"] for s in answer["segments"]} | {t.emotion for t in truth or []})
    axis.legend(handles=[Patch(color=colours[label], label=label) for label in used], loc="upper left",
                bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    note = "bar height: confidence of the dominant label" + ("; thin strip: the emotion spoken" if truth else "")
    axis.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out


def synthetic_call(minutes: float, seed: int = 0):
    """A two-speaker call of about ``minutes``: alternating turns of 3-7 s, each emotion in turn. Returns (samples, truth)."""
    import numpy as np

    from ser_train.synth import EMOTIONS, two_speaker_call

    rng = np.random.default_rng(seed)
    turns, seconds = [], 0.0
    while seconds < minutes * 60:
        length = float(rng.uniform(3.0, 7.0))
        turns.append((len(turns) % 2, EMOTIONS[(len(turns) * 3) % len(EMOTIONS)], length))
        seconds += length + 1.5
    return two_speaker_call(turns, rng)


def busy_call(minutes: float, seed: int = 0):
    """Both channels talking for about ``minutes`` at once, turns back to back (0.1-0.3 s apart, shorter than the
    detector's gap). Returns (samples, truth) as ``synthetic_call`` does."""
    import numpy as np

    from ser_train.synth import EMOTIONS, SAMPLE_RATE, two_speaker_call

    rng = np.random.default_rng(seed)
    lanes, truth = [], []
    for channel in (0, 1):
        turns, seconds = [], 0.0
        while seconds < minutes * 60:
            length = float(rng.uniform(3.0, 7.0))
            turns.append((channel, EMOTIONS[(len(turns) * 3 + channel) % len(EMOTIONS)], length))
            seconds += length + 0.2
        samples, spoken = two_speaker_call(turns, rng, pause=(0.1, 0.3))
        lanes.append(samples[:, channel])
        truth += spoken
    frames = min(len(lane) for lane in lanes)
    return np.stack([lane[:frames] for lane in lanes], axis=1), [t for t in truth if t.end <= frames / SAMPLE_RATE]


def turn_accuracy(answer: dict, truth) -> tuple[int, int]:
    """(turns whose segments' speech-weighted dominant label is the emotion spoken, turns)."""
    right = 0
    for turn in truth:
        inside = [s for s in answer["segments"] if s["channel"] == turn.channel and s["end"] > turn.start
                  and s["start"] < turn.end]
        totals: dict[str, float] = {}
        for segment in inside:
            for result in segment["results"]:
                totals[result["label"]] = totals.get(result["label"], 0.0) + result["score"] * (segment["end"] - segment["start"])
        right += bool(totals) and max(totals, key=totals.get) == turn.emotion
    return right, len(truth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ser-serve bench-timeline", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic call")
    parser.add_argument("--model-dir", type=Path, default=Path("models/demo"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--busy", action="store_true",
                        help="both channels talking all the time (timeline-busy.*): the most segments per hour")
    parser.add_argument("--plot-minutes", type=float, default=2.0, help="the first minutes drawn in timeline.png")
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="as a worker does by default (ser.keep_freed_memory, ser_serve/allocator.py)")
    args = parser.parse_args(argv)

    import resource
    import tracemalloc

    import torch

    from ser_serve import EmotionClassifier, allocator
    from ser_tools.encode import encode

    keeps_freed_memory = args.keep_freed_memory and allocator.keep_freed_memory()

    samples, truth = (busy_call if args.busy else synthetic_call)(args.minutes)
    data = encode(samples[::2], 8_000, "wav-ulaw")  # 8 kHz stereo telephony (the synthetic voice is band-limited)
    del samples
    classifier = EmotionClassifier.from_pretrained(args.model_dir, device="cpu")
    resident_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    answer = classifier.timeline(data, channels="separate")
    elapsed = time.perf_counter() - started
    resident_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - resident_before
    tracemalloc.start()  # a second pass for memory only: tracing slows numpy allocations
    classifier.timeline(data, channels="separate")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    right, turns = turn_accuracy(answer, truth)
    duration = answer["duration"]
    result = {
        "cpu": _cpu_model(), "torch_threads": torch.get_num_threads(), "keeps_freed_memory": keeps_freed_memory,
        "model": str(args.model_dir), "call": "both channels talking all the time" if args.busy else "turns with pauses",
        "audio_seconds": duration, "channels": 2, "format": "wav mu-law 8 kHz stereo", "segments": len(answer["segments"]),
        "processing_seconds": round(elapsed, 2), "seconds_per_hour_of_audio": round(elapsed / duration * 3600, 1),
        "peak_traced_mib": round(peak / 2**20, 1), "peak_resident_growth_mib": round(resident_growth / 2**10),
        "upload_mib": round(len(data) / 2**20, 1),
        "turns_right": right, "turns": turns,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "timeline-busy" if args.busy else "timeline"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    shown = args.plot_minutes * 60
    excerpt = {**answer, "duration": min(duration, shown), "segments": [s for s in answer["segments"] if s["start"] < shown]}
    plot_timeline(excerpt, args.out / f"{stem}.png", truth=[t for t in truth if t.start < shown],
                  title=f"synthetic two-speaker call ({result['call']}), first {args.plot_minutes:g} min ({args.model_dir})")
    print(json.dumps(result, indent=2))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
