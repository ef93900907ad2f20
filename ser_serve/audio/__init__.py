"""Request bytes -> float32 mono 16 kHz samples: sniff, bounded decode, limits (see decode.py)."""

from ser_serve.audio.decode import (
    TARGET_SAMPLE_RATE, AudioStream, DecodedAudio, array_stream, decode, from_array, load_waveform, open_stream, to_mono_16k,
)
from ser_serve.audio.sniff import SUPPORTED_FORMATS, sniff_format
from ser_serve.settings import AudioLimits

__all__ = [
    "SUPPORTED_FORMATS", "TARGET_SAMPLE_RATE", "AudioLimits", "AudioStream", "DecodedAudio", "array_stream", "decode", "from_array",
    "load_waveform", "open_stream",
    "sniff_format", "to_mono_16k",
]
