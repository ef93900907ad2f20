"""Long recordings as an emotion timeline: speech found by VAD, cut into windows, classified as it streams.

The recording is decoded block by block (ser_serve.audio.open_stream); each
analysed channel ("lane": the mean downmix, or every channel on its own) is
resampled to 16 kHz as it streams, judged in 30 ms frames by the
voice-activity detector, and its speech regions are cut into windows of
``window_seconds`` every ``hop_seconds``. A window is classified as soon as
its samples have arrived, in batches through the same exact batcher as single
clips (``EmotionModel.predict_proba``), so memory holds one block, about one
window per lane and one batch, never the recording: what grows with length
is the list of segment scores (bounded by ``max_segments``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import soxr

from ser_serve import vad
from ser_serve.audio import TARGET_SAMPLE_RATE, AudioStream
from ser_serve.errors import InvalidAudio, InvalidParameter, TooManySegments
from ser_serve.response import to_response
from ser_serve.settings import TimelineSettings, VadSettings

logger = logging.getLogger(__name__)

# "mix": one lane, the mean of all channels (the single-clip path's downmix);
# "separate": one lane per channel, e.g. agent and customer of a stereo call.
CHANNEL_MODES = ("mix", "separate")
DEFAULT_CHANNELS = "mix"
# How a request names its channel mode: a header (REST), or a form field / gRPC input of
# this name. One definition for the gateway, which forwards it, and the handler, which reads it.
CHANNELS_HEADER = "X-Channels"
CHANNELS_FIELD = "channels"


def channel_mode(value) -> str:
    """The channel mode named by a request option (None or empty: the default), or :class:`InvalidParameter`."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    mode = (value or DEFAULT_CHANNELS).strip().lower()
    if mode not in CHANNEL_MODES:
        raise InvalidParameter(f"channels must be one of {', '.join(CHANNEL_MODES)}; got {value!r}.")
    return mode


class _Region:
    """One speech region of a lane, in 16 kHz sample indices, and the windows that cover it.

    Full windows are handed out as soon as the voiced audio reaches their end;
    when the region closes, a last window ending at the region's end covers
    what the full ones left, and a region shorter than one window is one segment.
    """

    def __init__(self, start: int, window: int, hop: int, min_voiced: int):
        self.start, self.window, self.hop, self.min_voiced = start, window, hop, min_voiced
        self.end = start          # end of the last voiced frame
        self.voiced = 0           # voiced samples seen (gaps excluded)
        self.next_start = start   # start of the next full window
        self.covered_to: int | None = None

    def extend(self, end: int, voiced: int) -> list[tuple[int, int]]:
        self.end, self.voiced = end, self.voiced + voiced
        return self._full_windows()

    def close(self) -> list[tuple[int, int]]:
        if self.voiced < self.min_voiced:  # a click or a cough, not an utterance
            return []
        bounds = self._full_windows()
        if self.covered_to is None:
            return [(self.start, self.end)]
        if self.end > self.covered_to:
            bounds.append((self.end - self.window, self.end))
        return bounds

    def keep_from(self) -> int:
        """The earliest sample a window still to come can start at."""
        return min(self.next_start, max(self.start, self.end - self.window))

    def _full_windows(self) -> list[tuple[int, int]]:
        if self.voiced < self.min_voiced:
            return []
        bounds = []
        while self.next_start + self.window <= self.end:
            bounds.append((self.next_start, self.next_start + self.window))
            self.covered_to = self.next_start + self.window
            self.next_start += self.hop
        return bounds


def windows(start: int, end: int, window: int, hop: int) -> list[tuple[int, int]]:
    """The (start, end) windows that cover the speech region [start, end) (sample indices)."""
    region = _Region(start, window, hop, min_voiced=0)
    return region.extend(end, end - start) + region.close()


class _Lane:
    """One analysed channel: 16 kHz resampling, VAD and windowing as blocks arrive."""

    def __init__(self, channel: int, sample_rate: int, timeline: TimelineSettings, vad_settings: VadSettings):
        self.channel = channel
        self.resampler = (None if sample_rate == TARGET_SAMPLE_RATE else
                          soxr.ResampleStream(sample_rate, TARGET_SAMPLE_RATE, 1, dtype="float32", quality="HQ"))
        self.detector = vad.detector(vad_settings)
        self.window = int(round(timeline.window_seconds * TARGET_SAMPLE_RATE))
        self.hop = int(round(timeline.hop_seconds * TARGET_SAMPLE_RATE))
        self.min_voiced = int(vad_settings.min_speech_seconds * TARGET_SAMPLE_RATE)
        self.max_gap = int(vad_settings.max_gap_seconds * TARGET_SAMPLE_RATE)
        self.pending = np.zeros(0, np.float32)  # resampled, not yet judged (less than one frame)
        self.judged = 0                          # samples judged so far
        self.kept = np.zeros(0, np.float32)     # samples [kept_from, judged) a window may still need
        self.kept_from = 0
        self.region: _Region | None = None

    def feed(self, samples: np.ndarray, last: bool = False) -> list[tuple[int, int, np.ndarray]]:
        """Take the next samples of this channel at the file's rate; return the (start, end, waveform) windows now complete."""
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(np.ascontiguousarray(samples, np.float32), last=last)
        chunk = np.concatenate([self.pending, np.asarray(samples, np.float32)])
        decisions = vad.voiced_frames(chunk, self.detector)
        judged = len(decisions) * vad.FRAME
        self.kept = np.concatenate([self.kept, chunk[:judged]])
        self.pending = chunk[judged:].copy()
        bounds = []
        for index, voiced in enumerate(decisions):
            frame_start = self.judged + index * vad.FRAME
            if voiced:
                if self.region is None:
                    self.region = _Region(frame_start, self.window, self.hop, self.min_voiced)
                bounds += self.region.extend(frame_start + vad.FRAME, vad.FRAME)
            elif self.region is not None and frame_start + vad.FRAME - self.region.end > self.max_gap:
                bounds += self.region.close()
                self.region = None
        self.judged += judged
        if last and self.region is not None:
            bounds += self.region.close()
            self.region = None
        complete = [(start, end, self.kept[start - self.kept_from:end - self.kept_from].copy()) for start, end in bounds]
        keep_from = self.region.keep_from() if self.region is not None else self.judged
        self.kept = self.kept[keep_from - self.kept_from:].copy()  # a copy: the slice would pin the old buffer
        self.kept_from = keep_from
        return complete


@dataclass
class _Segment:
    channel: int
    start: int   # 16 kHz sample indices
    end: int
    scores: np.ndarray


def analyse(stream: AudioStream, model, settings: TimelineSettings, vad_settings: VadSettings,
            mode: str = DEFAULT_CHANNELS, request: str = "") -> dict:
    """The timeline answer for an opened stream (opened with ``mix`` for mode "mix").

    ``model`` is an :class:`ser_serve.model.emotion_model.EmotionModel`;
    ``request`` names the request in the progress log lines.
    """
    started = time.perf_counter()
    lanes = [_Lane(channel, stream.sample_rate, settings, vad_settings) for channel in range(stream.channels)]
    batch = _Batch(model, settings.max_segments)
    frames, next_report = 0, settings.progress_every_seconds
    for block in stream.blocks:
        frames += len(block)
        for lane in lanes:
            for start, end, waveform in lane.feed(block[:, lane.channel]):
                batch.add(lane.channel, start, end, waveform)
        if frames / stream.sample_rate >= next_report:
            logger.info("timeline %s: %.0f s of audio analysed, %d segments, %.1f s elapsed", request,
                        frames / stream.sample_rate, batch.count, time.perf_counter() - started)
            next_report += settings.progress_every_seconds
    if frames == 0:
        raise InvalidAudio(f"The {stream.format} file contains no audio samples.")
    for lane in lanes:
        for start, end, waveform in lane.feed(np.zeros(0, np.float32), last=True):
            batch.add(lane.channel, start, end, waveform)
    segments = batch.finish()
    duration = frames / stream.sample_rate
    logger.info("timeline %s done: %.1f s of audio, %d lanes (%s), %d segments in %.1f s", request, duration,
                len(lanes), mode, len(segments), time.perf_counter() - started)
    return {
        "duration": round(duration, 3),
        "channels": len(lanes),
        "segments": [_segment_json(segment, model.id2label) for segment in segments],
        "summary": summarise(segments, len(lanes), model.id2label, mode),
    }


class _Batch:
    """Windows waiting for a forward pass: features are made at once, scored when a pass's budget is full."""

    def __init__(self, model, max_segments: int):
        self.model, self.max_segments = model, max_segments
        self.waiting: list[tuple[int, int, int, np.ndarray]] = []
        self.waiting_samples = 0
        self.done: list[_Segment] = []

    @property
    def count(self) -> int:
        return len(self.done) + len(self.waiting)

    def add(self, channel: int, start: int, end: int, waveform: np.ndarray) -> None:
        if self.count >= self.max_segments:
            raise TooManySegments(f"The recording has more than {self.max_segments:,} speech segments, the limit; "
                                  "send a shorter recording or raise ser.timeline.max_segments.")
        self.waiting.append((channel, start, end, self.model.features(waveform)))
        self.waiting_samples += end - start
        if self.waiting_samples >= self.model.budget.max_batch_samples:
            self._score()

    def finish(self) -> list[_Segment]:
        self._score()
        return sorted(self.done, key=lambda s: (s.start, s.channel))

    def _score(self) -> None:
        if self.waiting:
            scores = self.model.predict_proba([features for *_, features in self.waiting])
            self.done += [_Segment(c, s, e, row) for (c, s, e, _), row in zip(self.waiting, scores)]
        self.waiting, self.waiting_samples = [], 0


def _segment_json(segment: _Segment, id2label) -> dict:
    return {"start": round(segment.start / TARGET_SAMPLE_RATE, 3), "end": round(segment.end / TARGET_SAMPLE_RATE, 3),
            "channel": segment.channel, **to_response(segment.scores, id2label)}


def speech_time_weights(bounds: list[tuple[int, int]]) -> np.ndarray:
    """The speech time each (start, end) segment of one lane stands for.

    Where windows overlap, each instant is shared equally by the windows that
    cover it, so every second of speech counts once: the weights sum to the
    length of the union of the segments.
    """
    weights = np.zeros(len(bounds))
    events = sorted({point for bound in bounds for point in bound})
    order = sorted(range(len(bounds)), key=lambda i: bounds[i][0])
    active: list[int] = []
    cursor = 0
    for left, right in zip(events, events[1:]):
        while cursor < len(order) and bounds[order[cursor]][0] <= left:
            active.append(order[cursor])
            cursor += 1
        active = [i for i in active if bounds[i][1] > left]
        for i in active:
            weights[i] += (right - left) / len(active)
    return weights


def summarise(segments: list[_Segment], lanes: int, id2label, mode: str = DEFAULT_CHANNELS) -> dict:
    """Per lane: speech seconds, per-label scores weighted by speech time, and the dominant label."""
    channels = []
    for channel in range(lanes):
        mine = [s for s in segments if s.channel == channel]
        weights = speech_time_weights([(s.start, s.end) for s in mine]) / TARGET_SAMPLE_RATE
        entry = {"channel": channel, "speech_seconds": round(float(weights.sum()), 3), "segments": len(mine),
                 "results": [], "dominant": None}
        if mine:
            scores = np.average(np.stack([s.scores for s in mine]), axis=0, weights=weights)
            entry.update(to_response(scores, id2label))
        channels.append(entry)
    return {"mode": mode, "speech_seconds": round(sum(c["speech_seconds"] for c in channels), 3), "channels": channels}
