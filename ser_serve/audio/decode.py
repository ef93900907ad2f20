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

from ser_serve.settings import AudioLimits
from ser_serve.errors import (
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
    data = data if isinstance(data, bytes) else bytes(data)  # one copy at most (TorchServe hands over a bytearray)
    fmt = sniff_format(data)
    if fmt == "m4a":
        samples, rate = _decode_with_pyav(data, limits)
    else:
        samples, rate = _decode_with_soundfile(data, fmt, limits)
    if samples.shape[0] == 0:
        raise InvalidAudio(f"The {fmt} file contains no audio samples.")
    if not np.isfinite(samples).all():
        raise InvalidAudio(f"The {fmt} file contains NaN or infinite sample values.")
    return DecodedAudio(samples=samples, sample_rate=rate, format=fmt)


def from_array(samples, sample_rate: int | None, limits: AudioLimits = AudioLimits()) -> DecodedAudio:
    """Check an in-memory array as strictly as an upload: same limits, same typed errors.

    ``samples`` is (frames,) or (frames, channels), float in [-1, 1] or
    integer PCM (scaled by its type's range); ``sample_rate`` None means
    16 kHz. A (channels, frames) array is refused with a hint, not misread.
    """
    samples = np.asarray(samples)
    if sample_rate is None:
        sample_rate = TARGET_SAMPLE_RATE
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InvalidAudio(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}.")
    if samples.ndim not in (1, 2):
        raise InvalidAudio(f"The array has shape {samples.shape}; pass (frames,) or (frames, channels).")
    if samples.size == 0:
        raise EmptyInput("The array holds no samples.")
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        scale = float(max(-int(info.min), int(info.max)))
        offset = (int(info.max) + 1) / 2 if samples.dtype.kind == "u" else 0.0  # unsigned PCM is centred on mid-range
        samples = (samples.astype(np.float64) - offset) / scale
    elif samples.dtype.kind != "f":
        raise InvalidAudio(f"The array's dtype is {samples.dtype}; pass float or integer PCM samples.")
    frames, channels = (samples.shape[0], 1) if samples.ndim == 1 else samples.shape
    if samples.ndim == 2 and channels > limits.max_channels and frames <= limits.max_channels:
        raise InvalidAudio(
            f"The array has shape {samples.shape}, which reads as {channels} channels of {frames} frames; "
            f"it looks channels-first. Pass (frames, channels), e.g. array.T."
        )
    _check_header("array", int(sample_rate), channels, frames / sample_rate, limits)
    samples = np.asarray(samples, dtype=np.float32).reshape(frames, channels)
    if not np.isfinite(samples).all():
        raise InvalidAudio("The array contains NaN or infinite sample values.")
    return DecodedAudio(samples=samples, sample_rate=int(sample_rate), format="array")


def _check_header(fmt: str, sample_rate: int, channels: int, seconds: float | None, limits: AudioLimits) -> None:
    what = "The array" if fmt == "array" else f"The {fmt} file"
    if not limits.min_sample_rate <= sample_rate <= limits.max_sample_rate:
        raise InvalidAudio(
            f"{what} has a sample rate of {sample_rate} Hz; accepted rates are "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz."
        )
    if not 1 <= channels <= limits.max_channels:
        raise InvalidAudio(f"{what} has {channels} channels; at most {limits.max_channels} are accepted.")
    if seconds is not None and seconds > limits.max_seconds:
        raise AudioTooLong(f"{what} is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s.")


def _wav_data_chunk(data: bytes) -> tuple[int, int] | None:
    """(declared size, offset of the samples) of a WAV's data chunk, or None when the header does not say.

    libsndfile silently shortens a data chunk that runs past the end of the
    file, so truncation is detected here. 0 and 0xFFFFFFFF mark a streamed
    WAV whose writer did not know the length: those are accepted as they are.
    """
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            return None if size in (0, 0xFFFFFFFF) else (size, offset + 8)
        offset += 8 + size + (size & 1)
    return None


def _check_not_truncated(data: bytes, fmt: str, declared_frames: int, decoded_frames: int, frame_bytes: int) -> None:
    if fmt == "wav":
        chunk = _wav_data_chunk(data)
        # Measured from the data chunk the walk found, not from the first
        # bytes "data" anywhere (a LIST chunk saying "metadata" would match).
        declared, available = (chunk[0], len(data) - chunk[1]) if chunk else (None, 0)
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
            # soundfile never reads past the header's frame count, which
            # _check_header has just bounded: the header is the memory bound.
            samples = sound.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, EOFError, ValueError) as exc:
        raise UndecodableAudio(f"The {fmt} file could not be decoded: {_first_line(exc)}.") from exc
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
    except (av.FFmpegError, UnicodeDecodeError) as exc:  # PyAV decodes container metadata as UTF-8 on open
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
