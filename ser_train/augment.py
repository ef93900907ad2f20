"""Training-time degradations: what a voice goes through between a mouth and the server.

A model trained on clean generator output learns the generator's channel (its
exact spectrum, its digital silence) as much as the prosody. Each training
clip is therefore, with some probability, passed through a random chain of
the things real uploads suffer: a room (reverberation), a narrow channel
(telephone band, a random low-pass), a lossy codec (Opus, MP3, AMR-NB), level
changes and background noise. The prosodic cues (pitch level and movement,
rate, loudness contour) survive all of these; the generator's fingerprints do
not, which is the point. ``other_voice`` (used before the chain, with its own
probability) changes the voice itself: pitch and formants shifted together and
a random spectral colouring, as between speakers and microphones.

Everything is driven by the ``numpy.random.Generator`` passed in, so a run is
reproducible from its seed. Outputs keep the input's length and stay within
[-1, 1].
"""

from __future__ import annotations


import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

SAMPLE_RATE = 16_000
# other_voice's widest pitch-and-formant shift unless told otherwise (train --voice-semitones), in semitones.
VOICE_SEMITONES = 2.0
# Lossy codecs and bit rates a voice message or a call plausibly went through.
CODECS = (("libopus", "ogg", 12_000), ("libopus", "ogg", 24_000), ("libmp3lame", "mp3", 32_000),
          ("libmp3lame", "mp3", 64_000), ("libopencore_amrnb", "amr", 12_200))


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White or pink-ish (low-passed) noise at ``snr_db`` relative to the clip's RMS."""
    noise = rng.standard_normal(len(x))
    if rng.random() < 0.5:  # brown-ish noise: room hum and traffic sit low in the spectrum
        noise = sosfilt(butter(1, 500, fs=SAMPLE_RATE, output="sos"), noise)
    signal_rms = np.sqrt(np.mean(x**2)) + 1e-9
    noise *= signal_rms / (np.sqrt(np.mean(noise**2)) + 1e-12) / 10 ** (snr_db / 20)
    return x + noise


def impulse_response(rt60: float, rng: np.random.Generator, seconds: float | None = None) -> np.ndarray:
    """A synthetic room: exponentially decaying noise (60 dB down after ``rt60`` s) after a direct path."""
    n = int((seconds or min(rt60, 1.0)) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections arrive a little after the direct sound
    ir = tail * rng.uniform(0.1, 0.4) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    ir[0] = 1.0
    return ir


def reverberate(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    wet = fftconvolve(x, impulse_response(rt60, rng))[: len(x)]
    return wet * (np.abs(x).max() / (np.abs(wet).max() + 1e-9))


def band_limit(x: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Band-pass (telephone: 300-3400 Hz) or low-pass (``low`` None) with a 4th-order Butterworth."""
    if low is None:
        sos = butter(4, high, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    else:
        sos = butter(4, (low, high), btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x)


def codec_round_trip(x: np.ndarray, codec: str, container: str, bit_rate: int) -> np.ndarray:
    """Encode with FFmpeg's ``codec`` at ``bit_rate`` (PyAV, in-process), decode with the serving decoder."""
    from ser_serve.audio import load_waveform
    from ser_tools.encode import encode_pyav

    rate = {"libopus": 16_000, "libmp3lame": 16_000, "libopencore_amrnb": 8_000}[codec]
    y = load_waveform(encode_pyav(np.asarray(x, dtype=np.float32), SAMPLE_RATE, container, codec, rate, 1, bit_rate))
    # Codecs add priming samples and pad to whole frames: keep the input's length (delay is under 30 ms).
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


def random_codec(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return codec_round_trip(x, *CODECS[rng.integers(len(CODECS))])


def augment(x: np.ndarray, rng: np.random.Generator, p: float = 0.8, codec: bool = True) -> np.ndarray:
    """A random chain of degradations (each step with its own probability); the clip unchanged with 1 - ``p``.

    ``codec=False`` skips the codec step (it costs milliseconds per clip; training applies it to a
    cached copy instead, see ``ser_train.train``). Same length as ``x``, float32 within [-1, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    if rng.random() >= p:
        return np.asarray(x, dtype=np.float32)
    peak = np.abs(x).max() + 1e-9
    if rng.random() < 0.4:
        x = reverberate(x, rng.uniform(0.15, 0.9), rng)
    if rng.random() < 0.35:
        x = band_limit(x, 300.0, 3400.0) if rng.random() < 0.5 else band_limit(x, None, rng.uniform(2500, 7000))
    if codec and rng.random() < 0.3:
        x = random_codec(x.astype(np.float32), rng).astype(np.float64)
    if rng.random() < 0.6:
        x = add_noise(x, rng.uniform(5, 35), rng)
    # Gain: a level anywhere from a quiet phone to a hot microphone (peak 0.05..0.99).
    x = x * (rng.uniform(0.05, 0.99) if rng.random() < 0.7 else peak) / (np.abs(x).max() + 1e-9)
    return np.clip(x, -1, 1).astype(np.float32)


# --- voice identity -------------------------------------------------------------------------------------------
# The text-to-speech engines have a handful of voices each, with fixed formants (only F0 and rate vary between
# their 'speakers'), so a model can learn which generator (and voice) it hears from timbre alone, and then has
# nothing to go on for an engine it never heard. These steps make a clip sound like another voice while keeping
# its prosody's shape: the pitch *movements*, the rate and the loudness contour.


def shift_voice(x: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch and formants moved together by ``semitones`` (a shorter or longer vocal tract and a higher or lower
    voice, as between speakers), duration unchanged (phase-vocoder time stretch, then resampling)."""
    import librosa

    y = librosa.effects.pitch_shift(np.asarray(x, dtype=np.float32), sr=SAMPLE_RATE, n_steps=semitones,
                                    res_type="soxr_hq")
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


def colour(x: np.ndarray, rng: np.random.Generator, depth_db: float = 8.0, points: int = 8) -> np.ndarray:
    """A random smooth spectral envelope (``points`` gains within +-``depth_db`` at log-spaced frequencies
    from 100 Hz to 8 kHz, interpolated on a log axis): another vocal tract, microphone or loudspeaker colouring."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    anchors = np.geomspace(100.0, SAMPLE_RATE / 2, points)
    gains_db = rng.uniform(-depth_db, depth_db, points)
    gain = 10 ** (np.interp(np.log(np.maximum(freqs, 1.0)), np.log(anchors), gains_db) / 20)
    y = np.fft.irfft(spectrum * gain, n=len(x))
    return y * (np.abs(x).max() / (np.abs(y).max() + 1e-9))


def warp_envelope(envelope: np.ndarray, warp: float) -> np.ndarray:
    """A WORLD spectral envelope (frames x bins) with each frame's value at frequency f taken from f / ``warp``:
    above 1 the formants move up (a shorter vocal tract), below 1 down."""
    bins = np.arange(envelope.shape[1])
    return np.ascontiguousarray(np.stack([np.interp(bins / warp, bins, frame) for frame in envelope]))


def pyworld():
    """The WORLD vocoder module (only training and data generation need it: the `train` extra)."""
    import warnings

    with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import pyworld as world
    return world


def world_analysis(x: np.ndarray, frame_ms: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WORLD's (F0, spectral envelope, aperiodicity) of a 16 kHz clip, one row per ``frame_ms``."""
    world = pyworld()
    x = np.asarray(x, dtype=np.float64)
    f0, times = world.dio(x, SAMPLE_RATE, frame_period=frame_ms)
    f0 = world.stonemask(x, f0, times, SAMPLE_RATE)
    return f0, world.cheaptrick(x, f0, times, SAMPLE_RATE), world.d4c(x, f0, times, SAMPLE_RATE)


def warp_formants(x: np.ndarray, warp: float, frame_ms: float = 5.0) -> np.ndarray:
    """The clip with its formants moved by ``warp`` (``warp_envelope``) and its F0 contour, timing and peak
    kept: another vocal tract saying the same thing at the same pitch. Unlike ``shift_voice``, the pitch, which
    the labels' prosody is partly made of, does not move."""
    return world_speaker(x, 1.0, warp, frame_ms)


def world_speaker(x: np.ndarray, pitch: float, warp: float, frame_ms: float = 5.0) -> np.ndarray:
    """The clip as another speaker, by WORLD analysis and resynthesis: the F0 contour times ``pitch`` (its
    shape kept; a moved contour is clipped to 60-500 Hz as ``tts`` does) and the formants moved by ``warp``;
    timing and peak kept."""
    x64 = np.asarray(x, dtype=np.float64)
    f0, envelope, aperiodicity = world_analysis(x64, frame_ms)
    if pitch != 1.0:
        voiced = f0 > 0
        f0[voiced] = np.clip(f0[voiced] * pitch, 60.0, 500.0)
    y = pyworld().synthesize(f0, warp_envelope(envelope, warp), aperiodicity, SAMPLE_RATE, frame_ms)
    y = np.pad(y, (0, max(0, len(x64) - len(y))))[: len(x64)]
    return (y * (np.abs(x64).max() / (np.abs(y).max() + 1e-9))).astype(np.float32)


def other_voice(x: np.ndarray, rng: np.random.Generator, p: float = 0.5,
                max_semitones: float = VOICE_SEMITONES) -> tuple[np.ndarray, float]:
    """With probability ``p``, the clip as another voice: a random pitch-and-formant shift (each with
    probability 0.7, up to ``max_semitones`` either way) and a random spectral colouring (0.7). Same length,
    float32 within [-1, 1]; the clip unchanged with 1 - ``p``. Also returns the shift in semitones (0 for
    none), so that pitch targets measured on the original clip can follow it."""
    x = np.asarray(x, dtype=np.float64)
    if rng.random() >= p:
        return x.astype(np.float32), 0.0
    semitones = 0.0
    if rng.random() < 0.7:
        semitones = float(rng.uniform(-max_semitones, max_semitones))
        x = shift_voice(x, semitones).astype(np.float64)
    if rng.random() < 0.7:
        x = colour(x, rng)
    return np.clip(x, -1, 1).astype(np.float32), semitones
