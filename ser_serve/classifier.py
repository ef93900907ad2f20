"""The in-process Python API over the same core the server uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from ser_serve import timeline, vad
from ser_serve.audio import AudioLimits, array_stream, from_array, load_waveform, open_stream, to_mono_16k
from ser_serve.batching import BatchBudget
from ser_serve.errors import NoSpeech
from ser_serve.model.emotion_model import EmotionModel, features_of
from ser_serve.errors import SerError
from ser_serve.response import to_response
from ser_serve.settings import PrecisionSettings, TimelineSettings, VadSettings

AudioSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray]


@dataclass(frozen=True)
class UploadPreparer:
    """Encoded upload -> model features: decode, validate, check for speech, normalise.

    Holds only what that needs (no model weights) and pickles small, so a
    decode process can hold one (ser_serve.decode_pool).
    """

    limits: AudioLimits
    vad: VadSettings
    feature_extractor: Any

    def __call__(self, data: bytes | bytearray) -> np.ndarray:
        return self.features(load_waveform(data, self.limits))

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Features of a decoded 16 kHz waveform, after the speech check."""
        if self.vad.reject_no_speech and not vad.has_speech(waveform, self.vad):
            raise NoSpeech("No speech was found in the audio (silence, or too quiet), so no emotion can be judged.")
        return features_of(self.feature_extractor, waveform)


class EmotionClassifier:
    """Speech emotion recognition from a local checkpoint.

    >>> clf = EmotionClassifier.from_pretrained("models/demo")    # doctest: +SKIP
    >>> clf.predict("clip.mp3")["dominant"]                        # doctest: +SKIP
    {'label': 'happy', 'score': 0.81}
    """

    def __init__(self, model: EmotionModel, limits: AudioLimits = AudioLimits(), vad: VadSettings = VadSettings(),
                 timeline: TimelineSettings = TimelineSettings()):
        self.model = model
        self.limits = limits
        self.vad = vad
        self.timeline_settings = timeline

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | None = None,
        limits: AudioLimits = AudioLimits(),
        budget: BatchBudget = BatchBudget(),
        dtype=None,
        vad: VadSettings = VadSettings(),
        timeline: TimelineSettings = TimelineSettings(),
        precision: str | PrecisionSettings | None = None,
    ):
        """Load a checkpoint directory (config.json, weights, preprocessor_config.json).

        ``device`` defaults to CUDA when available; ``dtype`` to float32.
        ``vad`` and ``timeline`` are the ``ser.vad`` and ``ser.timeline``
        sections of model-config.yaml (defaults: the server's).
        ``precision`` (a profile name or settings) runs a faster profile if it
        passes its guard against float32; ``model.precision_choice`` says
        what runs and why.
        """
        import torch

        model = EmotionModel(path, device=device, budget=budget, dtype=dtype or torch.float32)
        if precision is not None:
            model.use_precision(PrecisionSettings(profile=precision) if isinstance(precision, str) else precision)
        return cls(model, limits, vad, timeline)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def preparer(self) -> UploadPreparer:
        """What :meth:`prepare` does to encoded bytes, as a picklable object."""
        return UploadPreparer(self.limits, self.vad, self.model.feature_extractor)

    def prepare(self, source: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """Decode/validate one input and return normalised model features.

        ``source`` is a file path, encoded bytes, or an array of samples
        ((frames,) or (frames, channels), float or integer PCM) at
        ``sample_rate`` (None: 16 kHz; only arrays take a rate). Arrays pass
        the same limits as uploads. Raises a
        :class:`ser_serve.errors.SerError` subclass for bad input.
        """
        if isinstance(source, np.ndarray):
            checked = from_array(source, sample_rate, self.limits)
            return self.preparer.features(to_mono_16k(checked.samples, checked.sample_rate))
        if sample_rate is not None:
            raise TypeError("sample_rate is only for arrays: an encoded file carries its own rate")
        return self.preparer(Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else source)

    def predict_features(self, features: Sequence[np.ndarray]) -> list[dict]:
        """Responses for already prepared inputs, batched exactly; any bad row raises."""
        return [answer if isinstance(answer, dict) else _raise(answer) for answer in self.answer_each(features)]

    def answer_each(self, features: Sequence[np.ndarray]) -> list[dict | Exception]:
        """Like :meth:`predict_features`, but a row that cannot be answered (non-finite scores, or a failed
        forward pass) is returned as its error, so a server answers every other request of the batch."""
        answers: list[dict | Exception] = []
        for row in self.model.predict_proba_each(features):
            if isinstance(row, Exception):  # its forward pass failed; the other passes' clips are answered
                answers.append(row)
                continue
            try:
                answers.append(to_response(row, self.model.id2label))
            except SerError as exc:
                answers.append(exc)
        return answers

    def predict(self, source: AudioSource, sample_rate: int | None = None) -> dict:
        """``{"results": [...], "dominant": {...}}`` for one clip."""
        return self.predict_features([self.prepare(source, sample_rate)])[0]

    def predict_batch(self, sources: Sequence[AudioSource], sample_rate: int | None = None) -> list[dict]:
        """Responses for many clips in one exact batch; a bad input raises.

        ``sample_rate`` applies to every array among ``sources``.
        """
        return self.predict_features([self.prepare(source, sample_rate) for source in sources])

    def timeline(self, source: AudioSource, channels: str = "mix", sample_rate: int | None = None,
                 request: str = "") -> dict:
        """An emotion timeline of a long recording (ser_serve.timeline), up to ``ser.timeline.max_seconds``.

        ``channels`` is "mix" (one lane: the mean of all channels) or
        "separate" (one lane per channel). Answers ``{"duration", "channels",
        "segments": [{"start", "end", "channel", "results", "dominant"}...],
        "summary"}``; segments cover the speech the detector found.
        """
        mode = timeline.channel_mode(channels)
        limits = self.timeline_settings.audio_limits(self.limits)
        mix = mode == "mix"
        if isinstance(source, np.ndarray):
            stream = array_stream(source, sample_rate, limits, mix)
        else:
            if sample_rate is not None:
                raise TypeError("sample_rate is only for arrays: an encoded file carries its own rate")
            data = Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else source
            stream = open_stream(data, limits, mix)
        return timeline.analyse(stream, self.model, self.timeline_settings, self.vad, mode, request)

def _raise(exc: Exception):
    raise exc
