"""Request bytes -> float32 mono 16 kHz samples, with limits checked cheapest first.

Order of checks (each one cheaper than the next, so hostile input is refused
before it costs memory): byte size -> format sniffed from magic bytes ->
header (sample rate, channels, duration) -> bounded full decode -> sample
values. Decoding happens in-process from memory: soundfile (libsndfile) for
wav/flac/ogg/mp3, PyAV (FFmpeg's libraries) only for MP4/M4A, which
libsndfile cannot read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

from .settings import from_mapping
from .errors import (
    AudioTooLong,
    EmptyInput,
    InvalidAudio,
    PayloadTooLarge,
    UndecodableAudio,
    UnsupportedMediaType,
)

TARGET_SAMPLE_RATE = 16_000
# Clips shorter than this carry too little signal for the conv encoder
# (its receptive field is 400 samples); they are zero-padded to PAD_TO_SECONDS.
MIN_SECONDS = 0.1
PAD_TO_SECONDS = 1.0

SUPPORTED_FORMATS = ("wav", "flac", "ogg", "mp3", "m4a")


@dataclass(frozen=True)
class AudioLimits:
    """Per-request limits; the archive's model-config.yaml can override each one."""

    # An encoded upload bigger than this is refused before decoding. 30 s of
    # 48 kHz stereo 16-bit WAV is 5.8 MB, so 10 MiB leaves room for 24-bit.
    max_bytes: int = 10 * 1024 * 1024
    # Emotion is judged from utterances of a few seconds; minutes of audio
    # would monopolise a worker and its memory grows linearly with length.
    max_seconds: float = 30.0
    # More than 8 channels is not speech from a microphone we know of.
    max_channels: int = 8
    # Below 8 kHz speech is unintelligible; above 192 kHz is not a real recording.
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000

    @classmethod
    def from_mapping(cls, values: dict | None) -> "AudioLimits":
        """Build limits from a config mapping, refusing unknown keys."""
        return from_mapping(cls, values, "audio limit")


@dataclass(frozen=True)
class DecodedAudio:
    """Samples as decoded: shape (frames, channels), float32, at the file's own rate."""

    samples: np.ndarray
    sample_rate: int
    format: str


def sniff_format(data: bytes) -> str:
    """Name the container from its magic bytes, or raise :class:`UnsupportedMediaType`."""
    head = bytes(data[:12])
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3":
        return "mp3"
    # MPEG audio frame sync: 11 set bits, and a layer field that is not 00
    # (00 there would be an ADTS AAC stream, which we do not accept bare).
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06):
        return "mp3"
    raise UnsupportedMediaType(
        "The upload is not a supported audio file; send one of: "
        + ", ".join(SUPPORTED_FORMATS)
        + "."
    )


def decode(data: bytes, limits: AudioLimits = AudioLimits()) -> DecodedAudio:
    """Decode encoded audio bytes into float32 samples, enforcing ``limits``."""
    if data is None or len(data) == 0:
        raise EmptyInput("The request body is empty; send an audio file.")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The upload is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes."
        )
    fmt = sniff_format(data)
    if fmt == "m4a":
        samples, rate = _decode_with_pyav(bytes(data), limits)
    else:
        samples, rate = _decode_with_soundfile(bytes(data), fmt, limits)
    if samples.shape[0] == 0:
        raise InvalidAudio(f"The {fmt} file contains no audio samples.")
    if not np.isfinite(samples).all():
        raise InvalidAudio(f"The {fmt} file contains NaN or infinite sample values.")
    return DecodedAudio(samples=samples, sample_rate=rate, format=fmt)


def _check_header(fmt: str, sample_rate: int, channels: int, seconds: float | None, limits: AudioLimits) -> None:
    if not limits.min_sample_rate <= sample_rate <= limits.max_sample_rate:
        raise InvalidAudio(
            f"The {fmt} file says its sample rate is {sample_rate} Hz; accepted rates are "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz."
        )
    if not 1 <= channels <= limits.max_channels:
        raise InvalidAudio(
            f"The {fmt} file has {channels} channels; at most {limits.max_channels} are accepted."
        )
    if seconds is not None and seconds > limits.max_seconds:
        raise AudioTooLong(
            f"The {fmt} file is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s."
        )


def _wav_declared_data_bytes(data: bytes) -> int | None:
    """The size the WAV header gives its data chunk, or None when it does not say.

    libsndfile silently shortens a data chunk that runs past the end of the
    file, so truncation is detected here. 0 and 0xFFFFFFFF mark a streamed
    WAV whose writer did not know the length: those are accepted as they are.
    """
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            return None if size in (0, 0xFFFFFFFF) else size
        offset += 8 + size + (size & 1)
    return None


def _check_not_truncated(data: bytes, fmt: str, declared_frames: int, decoded_frames: int, frame_bytes: int) -> None:
    if fmt == "wav":
        declared = _wav_declared_data_bytes(data)
        available = len(data) - data.find(b"data") - 8 if declared is not None else 0
        if declared is not None and declared > available + 1:
            raise UndecodableAudio(
                f"The wav file is truncated: its header announces {declared:,} bytes of audio, "
                f"the upload holds {max(available, 0):,}."
            )
    elif fmt == "mp3" and declared_frames > 0 and decoded_frames < 0.95 * declared_frames:
        # Xing/Info headers state the length: far fewer frames means a cut file.
        raise UndecodableAudio(
            f"The mp3 file is truncated: its header announces {declared_frames:,} samples, "
            f"{decoded_frames:,} could be decoded."
        )


def _decode_with_soundfile(data: bytes, fmt: str, limits: AudioLimits) -> tuple[np.ndarray, int]:
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            _check_header(fmt, rate, channels, frames / rate if rate else None, limits)
            # Read at most one frame past the limit: a header that understates
            # the length cannot make us allocate more than the limit allows.
            max_frames = int(limits.max_seconds * rate)
            samples = sound.read(frames=max_frames + 1, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError, ValueError) as exc:
        raise UndecodableAudio(f"The {fmt} file could not be decoded: {_first_line(exc)}.") from exc
    if samples.shape[0] > max_frames:
        raise AudioTooLong(f"The {fmt} file is longer than the {limits.max_seconds:g} s limit.")
    _check_not_truncated(data, fmt, frames, samples.shape[0], channels)
    return samples, rate


def _decode_with_pyav(data: bytes, limits: AudioLimits) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only MP4/M4A uploads need FFmpeg

    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.audio:
                raise UndecodableAudio("The m4a file has no audio stream.")
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            seconds = float(stream.duration * stream.time_base) if stream.duration else None
            _check_header("m4a", rate, channels, seconds, limits)
            max_frames = int(limits.max_seconds * rate)
            # Convert every decoded frame to planar float32 at its own rate and
            # layout, so all sample formats the decoder may emit look alike.
            to_float = av.AudioResampler(format="fltp")
            chunks, total = [], 0
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunk = converted.to_ndarray()
                    chunks.append(chunk)
                    total += chunk.shape[1]
                if total > max_frames:
                    raise AudioTooLong(f"The m4a file is longer than the {limits.max_seconds:g} s limit.")
    except av.FFmpegError as exc:
        raise UndecodableAudio(f"The m4a file could not be decoded: {_first_line(exc)}.") from exc
    if not chunks:
        return np.zeros((0, max(channels, 1)), dtype=np.float32), rate
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32), rate


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix by averaging channels, resample to 16 kHz, pad clips under 0.1 s to 1 s.

    Resampling uses soxr at "HQ" quality, the same kernel ``librosa.resample``
    uses by default, so results match the librosa-based reference code.
    """
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.asarray(mono, dtype=np.float32)
    if sample_rate != TARGET_SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, TARGET_SAMPLE_RATE, quality="HQ")
    if len(mono) < MIN_SECONDS * TARGET_SAMPLE_RATE:
        mono = np.pad(mono, (0, int(PAD_TO_SECONDS * TARGET_SAMPLE_RATE) - len(mono)))
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_waveform(data: bytes, limits: AudioLimits = AudioLimits()) -> np.ndarray:
    """Encoded bytes -> float32 mono 16 kHz waveform ready for feature extraction."""
    decoded = decode(data, limits)
    return to_mono_16k(decoded.samples, decoded.sample_rate)
