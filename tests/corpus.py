"""A corpus of hostile, broken and edge-case uploads, generated in code.

Each case: (name, body bytes, headers, expected status, expected error code).
Code None: any of our error codes will do; "frontend": TorchServe's frontend
refuses the request itself, before any handler, with a bare status.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import soundfile

from ser_tools.encode import encode
from ser_serve.model.calibration import voice

MiB = 1024 * 1024


def _wav(samples, rate, subtype=None):
    return encode(samples, rate, "wav", subtype=subtype)


def _raw_wav(samples, rate, subtype="PCM_16"):
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def _flac_claiming_total_samples(total: int) -> bytes:
    data = bytearray(encode(voice(0.5), 16_000, "flac"))
    packed = int.from_bytes(data[18:26], "big")  # sample rate, channels, bits, 36-bit total samples
    packed = (packed & ~((1 << 36) - 1)) | total
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def _gzip_bomb() -> bytes:
    return gzip.compress(bytes(50 * MiB), compresslevel=9)  # ~50 KB that inflate to 50 MiB


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clip.wav", bytes(50 * MiB))
    return buffer.getvalue()


def bad_cases() -> list[tuple[str, bytes, dict, int, str | None]]:
    rng = np.random.default_rng(0)
    clip = voice(2.0, 16_000, seed=4)
    cases = [
        ("empty body", b"", {}, 400, "empty_input"),
        ("random bytes", rng.bytes(4096), {}, 415, "unsupported_media_type"),
        ("text", b"hello, is this audio?", {}, 415, "unsupported_media_type"),
        ("text with text/plain type", b"just words", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("json body", b'{"audio": "base64?"}', {"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        ("png image", b"\x89PNG\r\n\x1a\n" + rng.bytes(2048), {}, 415, "unsupported_media_type"),
        ("jpeg image", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.bytes(2048), {}, 415, "unsupported_media_type"),
        ("pdf", b"%PDF-1.7\n" + rng.bytes(2048), {}, 415, "unsupported_media_type"),
        ("midi", b"MThd\x00\x00\x00\x06" + rng.bytes(256), {}, 415, "unsupported_media_type"),
        ("zip bomb", _zip_bomb(), {}, 415, "unsupported_media_type"),
        ("gzip bomb", _gzip_bomb(), {}, 415, "unsupported_media_type"),
        ("iff image (FORM but not AIFF)", b"FORM\x00\x00\x08\x00ILBM" + rng.bytes(2048), {}, 415, "unsupported_media_type"),
        ("garbage after an ADTS sync word", b"\xff\xf1\x50\x80" + rng.bytes(1024), {}, 400, None),
        ("garbage after EBML (webm)", b"\x1a\x45\xdf\xa3" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("garbage after #!AMR", b"#!AMR\n" + rng.bytes(4096), {}, 400, None),
        ("garbage after FORM/AIFF", b"FORM\x00\x00\x10\x00AIFF" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("garbage after caff", b"caff\x00\x01\x00\x00" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("id3 tag only", b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16), {}, 400, "undecodable_audio"),
        ("garbage after RIFF/WAVE", b"RIFF\x00\x10\x00\x00WAVE" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("garbage after fLaC", b"fLaC" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("garbage after OggS", b"OggS" + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("garbage after ftyp", b"\x00\x00\x00\x18ftypM4A " + rng.bytes(4096), {}, 400, "undecodable_audio"),
        ("wav header claiming 2 GiB of data", _patched(_wav(clip, 16_000), 40, (2**31).to_bytes(4, "little")),
         {}, 400, "undecodable_audio"),
        ("flac header claiming 2^36 samples", _flac_claiming_total_samples(2**36 - 1), {}, 413, "audio_too_long"),
        ("wav header with sample rate 0", _patched(_wav(clip, 16_000), 24, bytes(4)), {}, 400, "undecodable_audio"),
        ("sample rate 4 kHz", _raw_wav(voice(1.0, 4_000), 4_000), {}, 400, "invalid_audio"),
        ("sample rate 384 kHz", _raw_wav(voice(0.2, 384_000), 384_000), {}, 400, "invalid_audio"),
        ("9 channels", _wav(np.zeros((16_000, 9), np.float32), 16_000), {}, 400, "invalid_audio"),
        ("64 channels", _wav(np.zeros((1_600, 64), np.float32), 16_000), {}, 400, "invalid_audio"),
        ("NaN samples", _wav(np.where(np.arange(16_000) == 500, np.nan, clip[:16_000]), 16_000, "FLOAT"),
         {}, 400, "invalid_audio"),
        ("Inf samples", _wav(np.where(np.arange(16_000) == 500, np.inf, clip[:16_000]), 16_000, "FLOAT"),
         {}, 400, "invalid_audio"),
        ("31 s, over the 30 s limit", _wav(voice(31.0, 8_000), 8_000), {}, 413, "audio_too_long"),
        ("11 MiB, over the 10 MiB limit", _wav(np.zeros((int(11 * MiB / 4), 2), np.float32), 48_000),
         {}, 413, "payload_too_large"),
        # 13 MiB passes the frontend now (its max_request_size is the timeline's 136 MiB): the handler refuses it.
        ("13 MiB, over the clip's byte limit", bytes(13 * MiB), {}, 413, "payload_too_large"),
        ("137 MiB, over max_request_size", bytes(137 * MiB), {}, 413, "frontend"),
        # No voiced frame: an emotion for silence would be made up (README, "No speech").
        ("silence", _wav(np.zeros(16_000, np.float32), 16_000), {}, 422, "no_speech"),
        ("whisper-quiet (-90 dBFS, below any microphone's noise)", _wav(voice(1.0) * 1e-4, 16_000, "FLOAT"),
         {}, 422, "no_speech"),
    ]
    for fmt in ("wav", "flac", "mp3", "m4a", "aiff", "caf"):
        data = encode(clip, 16_000, fmt)
        cases.append((f"truncated {fmt}", data[: len(data) // 2], {}, 400, None))
    for fmt in ("ogg", "opus"):
        data = encode(voice(2.0, 48_000), 48_000, fmt)
        cases.append((f"truncated {fmt} (header only)", data[:300], {}, 400, None))
    return cases


def good_cases() -> list[tuple[str, bytes]]:
    return [
        ("50 ms", _wav(voice(0.05), 16_000)),
        ("exactly the 30 s limit", _wav(voice(30.0, 8_000), 8_000)),
        ("8-bit PCM", _wav(voice(1.0), 16_000, "PCM_U8")),
        ("24-bit PCM", _wav(voice(1.0), 16_000, "PCM_24")),
        ("32-bit float", _wav(voice(1.0), 16_000, "FLOAT")),
        ("stereo 44.1 kHz", _wav(voice(1.5, 44_100, 2), 44_100)),
        ("48 kHz mono mp3", encode(voice(1.5, 48_000), 48_000, "mp3")),
        ("8 kHz, the lowest rate", _wav(voice(1.0, 8_000), 8_000)),
        ("8 channels, the most", _wav(voice(1.0, 16_000, 8), 16_000)),
        ("streamed wav of unknown length", _patched(_wav(voice(1.0), 16_000), 40, b"\xff\xff\xff\xff")),
        ("quiet speech at -40 dBFS", _wav(voice(1.0) * 0.03, 16_000, "FLOAT")),
        ("full-scale square wave", _wav(np.sign(np.sin(np.arange(16_000) / 8)).astype(np.float32) * 0.999, 16_000)),
        # What browsers, phones and call centres send:
        ("webm/opus from a browser's MediaRecorder", encode(voice(1.5, 48_000), 48_000, "webm")),
        ("webm/vorbis", encode(voice(1.5, 44_100), 44_100, "webm-vorbis")),
        ("raw AAC in ADTS", encode(voice(1.5, 44_100, 2), 44_100, "aac")),
        ("AMR-NB from a phone", encode(voice(1.5, 8_000), 8_000, "amr")),
        ("AIFF", encode(voice(1.5, 44_100, 2), 44_100, "aiff")),
        ("CAF from an iPhone", encode(voice(1.5, 48_000), 48_000, "caf")),
        ("8 kHz mu-law telephony wav", encode(voice(1.5, 8_000), 8_000, "wav-ulaw")),
        ("8 kHz A-law telephony wav, stereo call", encode(voice(1.5, 8_000, 2), 8_000, "wav-alaw")),
    ]
