"""Which container an upload is, from its magic bytes (never from its name or content type)."""

from __future__ import annotations

from ser_serve.errors import UnsupportedMediaType

# What browsers, phones, call centres and desktop tools produce. libsndfile
# reads the first six itself; FFmpeg (PyAV, in-process) the containers below.
SUPPORTED_FORMATS = ("wav", "flac", "ogg", "mp3", "aiff", "caf", "m4a", "webm", "aac", "amr")
# sniffed format -> the one FFmpeg demuxer allowed to open it (no probing of other demuxers).
PYAV_DEMUXERS = {"m4a": "mp4", "webm": "matroska", "aac": "aac", "amr": "amr"}


def sniff_format(data: bytes) -> str:
    """Name the container from its magic bytes, or raise :class:`UnsupportedMediaType`."""
    head = bytes(data[:12])
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"  # PCM, float, mu-law, A-law, ADPCM: whatever libsndfile reads
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"  # Vorbis or Opus
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"  # EBML: WebM/Matroska, MediaRecorder's default (Opus)
    if head.startswith(b"#!AMR"):
        return "amr"  # AMR-NB ("#!AMR\n") and AMR-WB ("#!AMR-WB\n")
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF0) == 0xF0 and not head[1] & 0x06:
        return "aac"  # ADTS: 12-bit sync, layer field 00
    # MPEG audio frame sync: 11 set bits and a layer field that is not 00.
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06):
        return "mp3"
    raise UnsupportedMediaType(
        "The upload is not a supported audio file; send one of: " + ", ".join(SUPPORTED_FORMATS) + "."
    )
