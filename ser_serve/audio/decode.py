"""Request bytes -> float32 mono 16 kHz samples, with limits checked cheapest first.

Order of checks (each one cheaper than the next, so hostile input is refused
before it costs memory): byte size -> format sniffed from magic bytes ->
header (sample rate, channels, duration) -> bounded full decode -> sample
values. Decoding happens in-process from memory: soundfile (libsndfile) for
wav/flac/ogg/mp3/aiff/caf, PyAV (FFmpeg's libraries) for the containers
libsndfile cannot read (m4a, webm, ADTS aac, amr), each with one named demuxer.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soundfile
import soxr

from ser_serve.audio.sniff import PYAV_DEMUXERS, sniff_format
from ser_serve.settings import AudioLimits
from ser_serve.errors import (
    AudioTooLong,
    EmptyInput,
    InvalidAudio,
    PayloadTooLarge,
    UndecodableAudio,
)

TARGET_SAMPLE_RATE = 16_000
# Clips shorter than this carry too little signal for the conv encoder
# (its receptive field is 400 samples); they are zero-padded to PAD_TO_SECONDS.
MIN_SECONDS = 0.1
PAD_TO_SECONDS = 1.0

@dataclass(frozen=True)
class DecodedAudio:
    """Samples as decoded: shape (frames, channels), float32, at the file's own rate."""

    samples: np.ndarray
    sample_rate: int
    format: str


@dataclass
class AudioStream:
    """An upload opened and checked up to its header; ``blocks`` yields (frames, channels) float32 at ``sample_rate``.

    ``channels`` is what ``blocks`` yields: 1 when opened with ``mix``.
    ``frames`` is the header's frame count, None when the container does not
    state it (ADTS, AMR, some WebM). The blocks generator checks the sample
    values, the length limit and truncation as it goes and raises the typed
    errors of :func:`decode`; it holds one block at a time.
    """

    format: str
    sample_rate: int
    channels: int
    frames: int | None
    blocks: Iterator[np.ndarray]


def open_stream(data: bytes, limits: AudioLimits = AudioLimits(), mix: bool = False) -> AudioStream:
    """Check ``data`` cheapest first (size, magic bytes, header) and return its block stream.

    With ``mix`` the channels are averaged block by block, so nothing ever
    holds more than one block of the file's channels.
    """
    if data is None or len(data) == 0:
        raise EmptyInput("The request body is empty; send an audio file.")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The upload is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes."
        )
    data = data if isinstance(data, bytes) else bytes(data)  # one copy at most (TorchServe hands over a bytearray)
    fmt = sniff_format(data)
    opener = _pyav_blocks if fmt in PYAV_DEMUXERS else _soundfile_blocks
    blocks = _checked(opener(data, fmt, limits, mix), fmt)
    rate, channels, frames = next(blocks)  # the generators yield their checked header first
    return AudioStream(fmt, rate, 1 if mix else channels, frames, blocks)


def _checked(blocks: Iterator, fmt: str) -> Iterator:
    """Pass the header through, then every block after refusing NaN and infinite samples."""
    yield next(blocks)
    for block in blocks:
        if not np.isfinite(block).all():
            raise InvalidAudio(f"The {fmt} file contains NaN or infinite sample values.")
        yield block


def decode(data: bytes, limits: AudioLimits = AudioLimits(), mix: bool = False) -> DecodedAudio:
    """Decode encoded audio bytes into float32 samples, enforcing ``limits``.

    With ``mix`` the channels are averaged block by block while decoding, so a
    request never holds more than one mono copy of its audio at the file's own
    rate (plus one block): the worst case the limits allow, 30 s at 192 kHz,
    is 23 MB instead of 184 MB for 8 channels. Without it, every channel is kept.
    """
    stream = open_stream(data, limits, mix)
    if stream.frames is not None:
        # The header's frame count, bounded by the limits just checked, sizes
        # the buffer: no list of blocks plus a concatenated copy.
        samples = np.empty((stream.frames, stream.channels), dtype=np.float32)
        decoded = 0
        for block in stream.blocks:
            samples[decoded:decoded + len(block)] = block
            decoded += len(block)
        samples = samples[:decoded]
    else:
        chunks = list(stream.blocks)
        samples = np.concatenate(chunks) if chunks else np.zeros((0, stream.channels), np.float32)
    if samples.shape[0] == 0:
        raise InvalidAudio(f"The {stream.format} file contains no audio samples.")
    return DecodedAudio(samples=samples, sample_rate=stream.sample_rate, format=stream.format)


def array_stream(samples: np.ndarray, sample_rate: int | None, limits: AudioLimits = AudioLimits(),
                 mix: bool = False) -> AudioStream:
    """An in-memory array (checked as :func:`from_array` does) as an :class:`AudioStream`."""
    checked = from_array(samples, sample_rate, limits)
    array = checked.samples.mean(axis=1, keepdims=True) if mix else checked.samples
    blocks = (array[i:i + BLOCK_FRAMES] for i in range(0, len(array), BLOCK_FRAMES))
    return AudioStream("array", checked.sample_rate, array.shape[1], len(array), blocks)


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


# The chunk holding the samples, and how its size is written: RIFF (WAV) is
# little-endian, IFF (AIFF) big-endian; AIFF's SSND chunk starts with 8 bytes
# of offset and block size before the samples.
_SAMPLE_CHUNKS = {"wav": (b"data", "little", 0), "aiff": (b"SSND", "big", 8)}


def _declared_sample_chunk(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(declared size, offset of the samples) of the sample chunk, or None when the header does not say.

    libsndfile silently shortens a sample chunk that runs past the end of the
    file, so truncation is detected here. 0 and 0xFFFFFFFF mark a streamed
    file whose writer did not know the length: those are accepted as they are.
    """
    name, byteorder, skip = _SAMPLE_CHUNKS[fmt]
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], byteorder)
        if chunk == name:
            return None if size in (0, 0xFFFFFFFF) else (size - skip, offset + 8 + skip)
        offset += 8 + size + (size & 1)
    return None


def _check_not_truncated(data: bytes, fmt: str, declared_frames: int, decoded_frames: int, frame_bytes: int) -> None:
    if fmt in _SAMPLE_CHUNKS:
        chunk = _declared_sample_chunk(data, fmt)
        # Measured from the chunk the walk found, not from the first bytes
        # "data" anywhere (a LIST chunk saying "metadata" would match).
        declared, available = (chunk[0], len(data) - chunk[1]) if chunk else (None, 0)
        if declared is not None and declared > available + 1:
            raise UndecodableAudio(
                f"The {fmt} file is truncated: its header announces {declared:,} bytes of audio, "
                f"the upload holds {max(available, 0):,}."
            )
    elif fmt == "mp3" and declared_frames > 0 and decoded_frames < 0.95 * declared_frames:
        # Xing/Info headers state the length: far fewer frames means a cut file.
        raise UndecodableAudio(
            f"The mp3 file is truncated: its header announces {declared_frames:,} samples, "
            f"{decoded_frames:,} could be decoded."
        )


# Frames decoded per step: small against the limits, large enough that the
# per-block Python overhead is negligible.
BLOCK_FRAMES = 65_536


def _soundfile_blocks(data: bytes, fmt: str, limits: AudioLimits, mix: bool) -> Iterator:
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            _check_header(fmt, rate, channels, frames / rate if rate else None, limits)
            # soundfile never reads past the header's frame count, which
            # _check_header has just bounded: the header is the length bound.
            frames = max(frames, 0)
            yield rate, channels, frames
            decoded = 0
            # read(), not blocks(): blocks() pads a short (truncated) file up to the header's length.
            while decoded < frames:
                block = sound.read(min(BLOCK_FRAMES, frames - decoded), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                decoded += len(block)
                yield block.mean(axis=1, keepdims=True) if mix else block
    except (soundfile.LibsndfileError, RuntimeError, EOFError, ValueError) as exc:
        raise UndecodableAudio(f"The {fmt} file could not be decoded: {_first_line(exc)}.") from exc
    _check_not_truncated(data, fmt, frames, decoded, channels)


def _pyav_blocks(data: bytes, fmt: str, limits: AudioLimits, mix: bool) -> Iterator:
    import av  # imported lazily: only the FFmpeg-only containers need it

    try:
        # One named demuxer per sniffed format: FFmpeg never probes its other demuxers on our bytes.
        with av.open(io.BytesIO(data), mode="r", format=PYAV_DEMUXERS[fmt]) as container:
            if not container.streams.audio:
                raise UndecodableAudio(f"The {fmt} file has no audio stream.")
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # a damaged header (seen with a mutated WebM in the fuzz test)
                raise UndecodableAudio(f"The {fmt} file's audio stream has no decoder.")
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            # A damaged header can carry a duration without a time base: then the length is checked while decoding.
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            _check_header(fmt, rate, channels, seconds, limits)
            yield rate, max(channels, 1), None  # a container's duration is not an exact frame count
            max_frames = int(limits.max_seconds * rate)
            # Convert every decoded frame to planar float32 at its own rate and
            # layout, so all sample formats the decoder may emit look alike.
            to_float = av.AudioResampler(format="fltp")
            total = 0
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunk = converted.to_ndarray()
                    # A damaged ADTS or MP3 stream can change its layout mid-stream; the header's checks
                    # (and the caller's buffer) hold for its first layout only.
                    channels = channels or chunk.shape[0]
                    if chunk.shape[0] != channels:
                        raise InvalidAudio(f"The {fmt} stream changes from {channels} to {chunk.shape[0]} "
                                           "channels mid-stream.")
                    total += chunk.shape[1]
                    if total > max_frames:  # containers without a duration (ADTS, AMR) stop here
                        raise AudioTooLong(f"The {fmt} file is longer than the {limits.max_seconds:g} s limit.")
                    yield np.ascontiguousarray((chunk.mean(axis=0, keepdims=True) if mix else chunk).T, dtype=np.float32)
    except (av.FFmpegError, UnicodeDecodeError) as exc:  # PyAV decodes container metadata as UTF-8 on open
        raise UndecodableAudio(f"The {fmt} file could not be decoded: {_first_line(exc)}.") from exc


# libsndfile names the file object it failed on ("Error opening <_io.BytesIO object at 0x7f...>: ..."):
# a memory address is no use to a client and would make the same upload's message differ per process.
_OPENING_PREFIX = re.compile(r"^Error opening <[^>]*>:\s*")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _OPENING_PREFIX.sub("", text[0]).rstrip(".") if text else type(exc).__name__


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
    """Encoded bytes -> float32 mono 16 kHz waveform ready for feature extraction (downmixed while decoding)."""
    decoded = decode(data, limits, mix=True)
    return to_mono_16k(decoded.samples, decoded.sample_rate)
