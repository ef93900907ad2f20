"""Long recordings: windowing, speech-time weighting, channel modes, limits and memory, in-process."""

import numpy as np
import pytest

from ser_serve import EmotionClassifier
from ser_serve.errors import AudioTooLong, InvalidParameter, InvalidSettings, NoSpeech, TooManySegments
from ser_serve.model.calibration import voice
from ser_serve.settings import ServeSettings, TimelineSettings
from ser_serve.timeline import _Segment, channel_mode, speech_time_weights, summarise, windows
from ser_tools.encode import ENCODABLE_FORMATS, encode

RATE = 16_000
# webrtcvad keeps saying "speech" for up to 5 frames (150 ms) after speech ends (its hang-over), so a segment
# may end that much after its utterance; README states it.
HANGOVER = 0.15
LABELS = {0: "a", 1: "b"}


def quiet(seconds, rate=RATE, channels=1, seed=0):
    """A faint noise floor (-70 dBFS): what a line carries between turns."""
    noise = 10 ** (-70 / 20) * np.random.default_rng(seed).standard_normal((int(seconds * rate), channels))
    return noise.astype(np.float32) if channels > 1 else noise[:, 0].astype(np.float32)


def test_a_region_shorter_than_a_window_is_one_segment():
    assert windows(100, 20_000, window=48_000, hop=24_000) == [(100, 20_000)]


def test_a_long_region_is_cut_into_hopped_windows_and_the_last_one_ends_at_the_region_end():
    bounds = windows(0, 100_000, window=48_000, hop=24_000)
    assert bounds == [(0, 48_000), (24_000, 72_000), (48_000, 96_000), (52_000, 100_000)]
    assert all(end - start == 48_000 for start, end in bounds)


def test_a_region_of_exactly_one_window_is_not_covered_twice():
    assert windows(0, 48_000, window=48_000, hop=24_000) == [(0, 48_000)]


def test_overlapping_windows_share_their_common_speech_time_equally():
    weights = speech_time_weights([(0, 4), (2, 6), (10, 12)])
    np.testing.assert_allclose(weights, [3.0, 3.0, 2.0])  # [2,4) is split between the first two
    assert weights.sum() == 8.0  # the union of the segments: every instant counts once


def test_summary_weights_each_label_by_speech_time_per_channel():
    segments = [
        _Segment(0, 0, 3 * RATE, np.array([0.9, 0.1])),      # 3 s mostly "a"
        _Segment(0, 3 * RATE, 4 * RATE, np.array([0.0, 1.0])),  # 1 s of "b"
        _Segment(1, 0, RATE, np.array([0.2, 0.8])),
    ]
    summary = summarise(segments, 3, LABELS, "separate")
    first, second, third = summary["channels"]
    assert first["speech_seconds"] == 4.0 and second["speech_seconds"] == 1.0
    scores = {r["label"]: r["score"] for r in first["results"]}
    assert scores == pytest.approx({"a": (3 * 0.9 + 0.0) / 4, "b": (3 * 0.1 + 1.0) / 4})
    assert first["dominant"]["label"] == "a" and second["dominant"]["label"] == "b"
    assert third == {"channel": 2, "speech_seconds": 0.0, "segments": 0, "results": [], "dominant": None}
    assert summary["speech_seconds"] == 5.0 and summary["mode"] == "separate"


def stereo_call(rate=RATE):
    """Left speaks 1-4 s, right 6-8 s, faint noise elsewhere (10 s)."""
    call = quiet(10.0, rate, channels=2)
    call[1 * rate:4 * rate, 0] += voice(3.0, rate, seed=1)
    call[6 * rate:8 * rate, 1] += voice(2.0, rate, seed=2)
    return call


def test_separate_channels_get_their_own_segments_inside_their_speech(classifier):
    answer = classifier.timeline(encode(stereo_call(8_000), 8_000, "wav-ulaw"), channels="separate")
    assert answer["channels"] == 2 and answer["duration"] == 10.0
    assert set(answer) == {"duration", "channels", "segments", "summary"}
    assert {s["channel"] for s in answer["segments"]} == {0, 1}
    for segment in answer["segments"]:
        speech = (1.0, 4.0) if segment["channel"] == 0 else (6.0, 8.0)
        assert speech[0] - 0.03 <= segment["start"] < segment["end"] <= speech[1] + HANGOVER, segment
        assert segment["dominant"] == segment["results"][0] and len(segment["results"]) == 8
    assert [c["speech_seconds"] for c in answer["summary"]["channels"]] == pytest.approx([3.0, 2.0], abs=0.15)


def test_mix_is_the_default_and_analyses_the_downmix_as_one_lane(classifier):
    data = encode(stereo_call(), RATE, "flac")
    answer = classifier.timeline(data)
    assert answer["channels"] == 1 and answer["summary"]["mode"] == "mix"
    assert {s["channel"] for s in answer["segments"]} == {0}
    assert answer["summary"]["speech_seconds"] == pytest.approx(5.0, abs=2 * HANGOVER)  # both turns


def test_a_segment_scores_like_the_same_window_sent_as_a_clip(classifier):
    clip = np.concatenate([quiet(1.0), voice(2.0, seed=3), quiet(1.0)])
    (segment,) = classifier.timeline(clip, sample_rate=RATE)["segments"]
    window = clip[int(segment["start"] * RATE):int(segment["end"] * RATE)]
    expected = {r["label"]: r["score"] for r in classifier.predict(window, sample_rate=RATE)["results"]}
    assert {r["label"]: r["score"] for r in segment["results"]} == pytest.approx(expected, abs=1e-5)


def test_silence_gives_an_empty_timeline_not_an_emotion(classifier):
    answer = classifier.timeline(encode(quiet(20.0), RATE, "wav"))
    assert answer["segments"] == [] and answer["summary"]["channels"][0]["dominant"] is None


def test_an_unknown_channel_mode_is_refused():
    assert channel_mode(None) == "mix" and channel_mode(b" Separate ") == "separate"
    with pytest.raises(InvalidParameter, match="mix, separate"):
        channel_mode("left")


def test_the_timeline_takes_recordings_beyond_the_clip_limit_up_to_its_own(tiny_checkpoint):
    clf = EmotionClassifier.from_pretrained(tiny_checkpoint, device="cpu", timeline=TimelineSettings(max_seconds=60))
    minute = encode(voice(45.0, 8_000), 8_000, "wav")
    with pytest.raises(AudioTooLong, match="limit is 30 s"):
        clf.predict(minute)
    assert clf.timeline(minute)["duration"] == 45.0
    with pytest.raises(AudioTooLong, match="limit is 60 s"):
        clf.timeline(encode(voice(61.0, 8_000), 8_000, "wav"))


def test_more_segments_than_the_limit_are_refused(tiny_checkpoint):
    clf = EmotionClassifier.from_pretrained(tiny_checkpoint, device="cpu", timeline=TimelineSettings(max_segments=3))
    with pytest.raises(TooManySegments, match="more than 3"):
        clf.timeline(voice(20.0), sample_rate=RATE)


def test_timeline_settings_are_validated():
    with pytest.raises(InvalidSettings, match="hop_seconds 4.0 exceeds window_seconds 3.0"):
        ServeSettings.from_mapping({"timeline": {"hop_seconds": 4.0}})
    with pytest.raises(InvalidSettings, match="ser.timeline.max_minutes: unknown setting"):
        ServeSettings.from_mapping({"timeline": {"max_minutes": 5}})
    with pytest.raises(InvalidSettings, match="ser.vad.aggressiveness"):
        ServeSettings.from_mapping({"vad": {"aggressiveness": 4}})


def test_a_clip_without_speech_is_refused_and_the_test_voice_counts_as_speech(classifier):
    with pytest.raises(NoSpeech, match="No speech"):
        classifier.predict(np.zeros(RATE, np.float32), sample_rate=RATE)
    with pytest.raises(NoSpeech):
        classifier.predict(encode(voice(1.0) * 1e-4, RATE, "wav", subtype="FLOAT"))
    assert classifier.predict(voice(0.05), sample_rate=RATE)["dominant"]


def test_memory_of_a_long_stereo_8khz_recording_does_not_grow_with_its_length(classifier):
    """Peak Python/numpy memory while analysing (the upload itself excluded), 2 and 10 minutes of stereo speech."""
    import tracemalloc

    peaks = {}
    for minutes in (2, 10):
        data = encode(voice(minutes * 60.0, 8_000, 2, seed=minutes), 8_000, "wav-ulaw")
        tracemalloc.start()
        try:
            answer = classifier.timeline(data, channels="separate")
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert answer["summary"]["speech_seconds"] == pytest.approx(2 * minutes * 60.0, abs=1.0)
    ten_minutes_at_16k = 10 * 60 * RATE * 2 * 4  # what keeping the decoded channels at 16 kHz would take: 77 MB
    assert peaks[10] < 24 * 1024 * 1024, peaks          # README: the bound, and the hour figure
    assert peaks[10] < ten_minutes_at_16k / 3
    # What grows is the segment list (about 1.5 kB per segment), not the audio.
    assert peaks[10] - peaks[2] < 8 * 1024 * 1024, peaks


@pytest.mark.parametrize("fmt", ENCODABLE_FORMATS)
def test_every_supported_format_streams_into_a_timeline(classifier, fmt):
    rate = 48_000 if fmt in ("opus", "webm") else 16_000
    answer = classifier.timeline(encode(stereo_call(rate), rate, fmt))
    assert answer["duration"] == pytest.approx(10.0, abs=0.15)  # AAC adds up to 2,112 frames of priming
    # Both turns, whatever the codec did to the waveform (AMR: 8 kHz narrow band; lossy encoder delays).
    assert answer["summary"]["speech_seconds"] == pytest.approx(5.0, abs=0.5)
