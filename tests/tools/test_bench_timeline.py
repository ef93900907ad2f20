"""`make bench-timeline`, run on half a minute of call: the record and the plot it writes, for both calls it makes."""

import json

import numpy as np

from ser_serve import EmotionClassifier
from ser_tools import timeline


def test_the_busy_call_keeps_both_channels_talking_with_no_pause_the_detector_would_see():
    samples, truth = timeline.busy_call(minutes=0.5)
    assert samples.ndim == 2 and samples.shape[1] == 2
    for channel in (0, 1):
        turns = sorted((t for t in truth if t.channel == channel), key=lambda t: t.start)
        assert turns[0].start < 0.3 and len(turns) >= 4
        gaps = [later.start - earlier.end for earlier, later in zip(turns, turns[1:])]
        assert max(gaps) <= 0.3  # shorter than the detector's bridged gap: one long region per lane
        assert turns[-1].end > 0.4 * 60
    assert len({t.emotion for t in truth}) >= 4
    assert np.abs(samples).max() <= 1.0


def test_bench_timeline_writes_its_record_and_plot_and_the_busy_call_gives_the_most_segments(tiny_checkpoint, tmp_path):
    records = {}
    for name, extra in (("timeline", []), ("timeline-busy", ["--busy"])):
        assert timeline.main(["--minutes", "0.5", "--model-dir", str(tiny_checkpoint), "--out", str(tmp_path),
                              "--plot-minutes", "0.5", *extra]) == 0
        records[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    calm, busy = records["timeline"], records["timeline-busy"]
    assert busy["call"] == "both channels talking all the time" and calm["call"] == "turns with pauses"
    for record in records.values():
        assert record["processing_seconds"] > 0 and record["peak_traced_mib"] > 0
        assert record["peak_resident_growth_mib"] >= 0 and record["turns"] > 0
    # Every hop of both lanes is speech: the segment count a recording of this length can have at most.
    settings = EmotionClassifier.from_pretrained(tiny_checkpoint, device="cpu").timeline_settings
    most = 2 * (int((busy["audio_seconds"] - settings.window_seconds) / settings.hop_seconds) + 1)
    assert most - 2 <= busy["segments"] <= most + 2
    assert busy["segments"] > calm["segments"] * 1.3
