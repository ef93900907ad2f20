"""Voice-activity detection on 16 kHz audio: which 30 ms frames are voiced.

webrtcvad (the WebRTC project's GMM detector, C, no model files, no
threads) was chosen by trying it against silero-vad on this project's
signals: silero found no speech at all in the synthetic voices the demo
model is trained on (it is trained on real speech) and set torch's thread
count to 1 on import; webrtcvad marked 33-83 % of their frames voiced,
none of silence, whispers at -90 dBFS or noise at -30 dBFS, and judged 600 s
in 0.5 s on one core.
"""

from __future__ import annotations

import numpy as np
import webrtcvad

from ser_serve.settings import VadSettings

SAMPLE_RATE = 16_000
# webrtcvad judges frames of 10, 20 or 30 ms; 30 ms is the cheapest per second.
FRAME = 480


def voiced_frames(waveform: np.ndarray, detector: "webrtcvad.Vad") -> list[bool]:
    """One decision per whole 30 ms frame of a 16 kHz float waveform (a trailing partial frame is not judged)."""
    count = len(waveform) // FRAME
    pcm = (np.clip(waveform[: count * FRAME], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    step = FRAME * 2  # bytes per frame of 16-bit samples
    return [detector.is_speech(pcm[i * step:(i + 1) * step], SAMPLE_RATE) for i in range(count)]


def detector(settings: VadSettings) -> "webrtcvad.Vad":
    """A detector with ``settings.aggressiveness``; one per channel, it keeps a little state between frames."""
    return webrtcvad.Vad(settings.aggressiveness)


def has_speech(waveform: np.ndarray, settings: VadSettings = VadSettings()) -> bool:
    """True when at least one 30 ms frame of the 16 kHz ``waveform`` is voiced."""
    return any(voiced_frames(waveform, detector(settings)))
