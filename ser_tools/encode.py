"""Waveform -> encoded bytes in every supported format (fixtures, samples, benchmarks)."""

from __future__ import annotations

import io

import numpy as np
import soundfile

# format name -> (libsndfile container, subtype).
_SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "wav-ulaw": ("WAV", "ULAW"),      # telephony: G.711 mu-law
    "wav-alaw": ("WAV", "ALAW"),      # telephony: G.711 A-law
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
    "caf": ("CAF", "PCM_16"),
}
# format name -> (FFmpeg muxer, encoder, encoder's sample rate or None for the input's,
# channels the encoder insists on or None for the input's).
_PYAV_FORMATS = {
    "m4a": ("mp4", "aac", None, None),
    "aac": ("adts", "aac", None, None),                # raw AAC in ADTS frames
    "webm": ("webm", "libopus", 48_000, None),         # MediaRecorder's default: Opus in WebM
    "webm-vorbis": ("webm", "vorbis", None, 2),        # FFmpeg's own Vorbis encoder is stereo only
    "amr": ("amr", "libopencore_amrnb", 8_000, 1),     # AMR-NB, phones' voice recorders: 8 kHz mono
}
ENCODABLE_FORMATS = tuple(_SOUNDFILE_FORMATS) + tuple(_PYAV_FORMATS)
# Opus only runs at these rates; other rates must be resampled before encoding.
OPUS_SAMPLE_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


def encode(samples: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode float samples (frames,) or (frames, channels) in [-1, 1] as ``fmt`` bytes.

    ``fmt`` is one of :data:`ENCODABLE_FORMATS` ("ogg" is Vorbis, "opus" is Opus in Ogg).
    ``subtype`` overrides the libsndfile subtype, e.g. "PCM_24" or "PCM_U8" for WAV.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if fmt in _PYAV_FORMATS:
        return encode_pyav(samples, sample_rate, *_PYAV_FORMATS[fmt])
    if fmt not in _SOUNDFILE_FORMATS:
        raise ValueError(f"cannot encode {fmt!r}; choose one of {ENCODABLE_FORMATS}")
    if fmt == "opus" and sample_rate not in OPUS_SAMPLE_RATES:
        raise ValueError(f"Opus needs one of {OPUS_SAMPLE_RATES} Hz, got {sample_rate}")
    container, default_subtype = _SOUNDFILE_FORMATS[fmt]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=container, subtype=subtype or default_subtype)
    return buffer.getvalue()


def encode_pyav(samples: np.ndarray, sample_rate: int, muxer: str, codec: str, codec_rate: int | None,
                codec_channels: int | None, bit_rate: int | None = None) -> bytes:
    """``samples`` through FFmpeg's ``codec`` (at ``codec_rate``, ``codec_channels``, ``bit_rate``; None: the
    input's or the encoder's default) into a ``muxer`` container, in-process with PyAV."""
    import av

    planar = samples.reshape(len(samples), -1).T  # (channels, frames)
    if codec_channels is not None and codec_channels != planar.shape[0]:
        planar = np.repeat(planar.mean(axis=0, keepdims=True), codec_channels, axis=0)
    layout = {1: "mono", 2: "stereo"}.get(planar.shape[0])
    if layout is None:
        raise ValueError(f"{muxer} fixtures support mono or stereo only")
    rate = codec_rate or sample_rate
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        # The encoder's own sample format, rate and frame size.
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate,
                                      frame_size=stream.codec_context.frame_size or None)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
