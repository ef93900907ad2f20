"""Request bytes -> float32 mono 16 kHz samples: sniff, bounded decode, limits (see decode.py)."""

from ser_serve.audio.decode import TARGET_SAMPLE_RATE, DecodedAudio, decode, from_array, load_waveform, to_mono_16k
from ser_serve.audio.sniff import SUPPORTED_FORMATS, sniff_format
from ser_serve.settings import AudioLimits

__all__ = [
    "SUPPORTED_FORMATS", "TARGET_SAMPLE_RATE", "AudioLimits", "DecodedAudio", "decode", "from_array", "load_waveform",
    "sniff_format", "to_mono_16k",
]
