"""Waveform -> encoded bytes in every supported format (fixtures, samples, benchmarks)."""

from __future__ import annotations

import io

import numpy as np
import soundfile

# format name -> (libsndfile container, subtype). m4a is handled by PyAV.
_SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
ENCODABLE_FORMATS = tuple(_SOUNDFILE_FORMATS) + ("m4a",)
# Opus only runs at these rates; other rates must be resampled before encoding.
OPUS_SAMPLE_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


def encode(samples: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode float samples (frames,) or (frames, channels) in [-1, 1] as ``fmt`` bytes.

    ``fmt`` is one of :data:`ENCODABLE_FORMATS` ("ogg" is Vorbis, "opus" is Opus in Ogg).
    ``subtype`` overrides the libsndfile subtype, e.g. "PCM_24" or "PCM_U8" for WAV.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if fmt == "m4a":
        return _encode_m4a(samples, sample_rate)
    if fmt not in _SOUNDFILE_FORMATS:
        raise ValueError(f"cannot encode {fmt!r}; choose one of {ENCODABLE_FORMATS}")
    if fmt == "opus" and sample_rate not in OPUS_SAMPLE_RATES:
        raise ValueError(f"Opus needs one of {OPUS_SAMPLE_RATES} Hz, got {sample_rate}")
    container, default_subtype = _SOUNDFILE_FORMATS[fmt]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=container, subtype=subtype or default_subtype)
    return buffer.getvalue()


def _encode_m4a(samples: np.ndarray, sample_rate: int) -> bytes:
    import av

    planar = samples.reshape(len(samples), -1).T  # (channels, frames)
    layout = {1: "mono", 2: "stereo"}.get(planar.shape[0])
    if layout is None:
        raise ValueError("m4a fixtures support mono or stereo only")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
