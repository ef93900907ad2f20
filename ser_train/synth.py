"""Synthetic emotional speech: a seedable source-filter voice whose prosody follows the emotion.

This is **not** speech and not a real emotion dataset. It exists so that the
project can train, evaluate and serve a model end to end with no download:
the demo model learns these synthetic cues, nothing more.

Source: a glottal pulse train (one smooth pulse per period, open for a
share of it that sets pressed or lax voice quality) whose pitch
follows a contour (declination, one accent per syllable, an emotion-specific
final rise or fall), with jitter (period noise), shimmer (amplitude noise),
breath noise and a spectral tilt (one-pole low-pass). Filter: per syllable, a
cascade of formant resonators for one of five vowels, scaled by the
speaker's vocal-tract length; unvoiced consonant bursts between syllables.
Speaking rate sets the syllable count; loudness the level; background noise
is added at a random SNR.

The emotion profiles follow the direction of the acoustic correlates reported
for vocal emotion (e.g. Banse & Scherer 1996; Scherer 2003; Juslin & Laukka
2003): anger loud, fast, high and variable pitch, flat spectral tilt; sadness
quiet, slow, low, flat pitch, steep tilt, breathy; fear high pitch, fast,
irregular (jitter, tremor); happiness high, wide pitch range, fast, smiling
(raised formants); calm low range, slow, smooth; disgust low pitch, slow,
creaky (jitter and shimmer), lowered formants; surprise very high, wide
range with a final rise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 16_000
EMOTIONS = ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass(frozen=True)
class Prosody:
    pitch: float       # multiple of the speaker's base F0
    pitch_range: float  # accent size, in semitones
    rate: float        # syllables per second
    loudness: float    # peak level, 0..1
    jitter: float      # relative period noise
    shimmer: float     # relative amplitude noise per period
    tilt: float        # one-pole low-pass coefficient: higher = darker voice
    breath: float      # share of aspiration noise in the source
    final: float       # final pitch movement in semitones (+ rise, - fall)
    tremor: float      # 7 Hz pitch tremor depth in semitones (fearful voices shake)
    open_quotient: float  # share of each period the glottis is open: low = pressed, high = lax/breathy
    formants: float    # formant multiplier: a smile shortens the tract (up), a lowered larynx lengthens it


PROFILES = {
    #                 pitch range rate loud  jitter shimmer tilt breath final tremor open  formants
    "angry":    Prosody(1.30, 5.0, 5.5, 0.90, 0.010, 0.06, 0.05, 0.02, -5.0, 0.0, 0.20, 1.00),
    "calm":     Prosody(0.92, 1.0, 3.2, 0.35, 0.003, 0.02, 0.75, 0.10, -1.0, 0.0, 0.50, 1.00),
    "disgust":  Prosody(0.85, 3.0, 2.4, 0.55, 0.080, 0.35, 0.60, 0.05, -6.0, 0.0, 0.30, 0.90),
    "fear":     Prosody(1.50, 2.0, 6.5, 0.50, 0.035, 0.10, 0.45, 0.30, 1.0, 1.2, 0.45, 1.00),
    "happy":    Prosody(1.25, 6.0, 5.0, 0.75, 0.006, 0.03, 0.30, 0.04, -1.0, 0.0, 0.35, 1.15),
    "neutral":  Prosody(1.00, 2.0, 4.0, 0.55, 0.006, 0.03, 0.50, 0.05, -1.5, 0.0, 0.40, 1.00),
    "sad":      Prosody(0.80, 0.5, 2.0, 0.25, 0.012, 0.05, 0.88, 0.35, -2.0, 0.0, 0.65, 1.00),
    "surprise": Prosody(1.60, 10.0, 4.5, 0.75, 0.008, 0.04, 0.30, 0.05, 9.0, 0.0, 0.40, 1.00),
}

# Formant frequencies (Hz) and bandwidths of five vowels for an adult male tract.
VOWELS = {
    "a": ((730, 1090, 2440), (90, 110, 170)),
    "e": ((530, 1840, 2480), (70, 100, 160)),
    "i": ((270, 2290, 3010), (60, 100, 180)),
    "o": ((570, 840, 2410), (80, 90, 160)),
    "u": ((300, 870, 2240), (60, 90, 150)),
}


@dataclass(frozen=True)
class Speaker:
    base_f0: float        # Hz
    tract_scale: float    # formant multiplier (shorter tract: higher formants)


def random_speaker(rng: np.random.Generator) -> Speaker:
    """Speakers with varied pitch ranges: lower and higher voices, different tract lengths."""
    high_voice = rng.random() < 0.5
    base_f0 = rng.uniform(165, 230) if high_voice else rng.uniform(95, 140)
    tract = rng.uniform(1.08, 1.2) if high_voice else rng.uniform(0.92, 1.04)
    return Speaker(base_f0, tract)


def _resonator(signal: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * frequency / SAMPLE_RATE
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1 - r], a, signal)


def _glottal_source(f0: np.ndarray, p: Prosody, rng: np.random.Generator) -> np.ndarray:
    """A pulse per glottal period; period and amplitude perturbed per period."""
    n = len(f0)
    source = np.zeros(n)
    t = 0.0
    while t < n - 1:
        period = SAMPLE_RATE / f0[int(t)] * (1 + p.jitter * rng.standard_normal())
        period = max(period, SAMPLE_RATE / 600)
        width = int(max(4, p.open_quotient * period))
        start = int(t)
        pulse = np.sin(np.linspace(0, np.pi, width)) ** 2 * (1 + p.shimmer * rng.standard_normal())
        end = min(n, start + width)
        source[start:end] += pulse[: end - start]
        t += period
    source = np.diff(source, prepend=0.0)  # radiation at the lips: a first difference
    source += p.breath * rng.standard_normal(n) * np.abs(source).max()
    return lfilter([1 - p.tilt], [1, -p.tilt], source)


def utterance(emotion: str, seconds: float, speaker: Speaker, rng: np.random.Generator,
              snr_db: float = 30.0) -> np.ndarray:
    """One synthetic utterance of ``seconds`` at 16 kHz, float32 in [-1, 1]."""
    p = PROFILES[emotion]
    n = int(seconds * SAMPLE_RATE)
    rate = p.rate * rng.uniform(0.9, 1.1)
    syllables = max(1, int(round(seconds * rate)))
    bounds = np.linspace(0, n, syllables + 1).astype(int)
    # Pitch contour in semitones around the speaker's base: declination, accents, final movement.
    t = np.arange(n) / n
    semitones = 12 * np.log2(p.pitch * rng.uniform(0.95, 1.05)) - 1.5 * t
    for i in range(syllables):
        centre = (bounds[i] + bounds[i + 1]) / 2 / n
        accent = p.pitch_range * rng.uniform(0.5, 1.0) * (1 if rng.random() < 0.85 else -0.5)
        semitones += accent * np.exp(-0.5 * ((t - centre) * syllables / 0.35) ** 2)
    semitones += p.final * np.clip((t - 0.8) / 0.2, 0, 1)
    semitones += p.tremor * np.sin(2 * np.pi * 7.0 * np.arange(n) / SAMPLE_RATE)
    f0 = speaker.base_f0 * 2 ** (semitones / 12)
    source = _glottal_source(f0, p, rng)
    speech = np.zeros(n)
    vowels = list(VOWELS)
    for i in range(syllables):
        a, b = bounds[i], bounds[i + 1]
        consonant = int(0.25 * (b - a))
        formants, bandwidths = VOWELS[vowels[rng.integers(len(vowels))]]
        segment = source[a + consonant : b]
        for f, bw in zip(formants, bandwidths):
            segment = _resonator(segment, f * speaker.tract_scale * p.formants, bw)
        envelope = np.sin(np.linspace(0, np.pi, len(segment))) ** 0.6
        speech[a + consonant : b] = segment * envelope
        burst = rng.standard_normal(consonant) * np.hanning(consonant) * 0.05
        speech[a : a + consonant] = _resonator(burst, rng.uniform(2500, 5000), 1500)
    speech *= p.loudness * rng.uniform(0.85, 1.15) / (np.abs(speech).max() + 1e-9)
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (snr_db / 20)
    speech += noise_rms * rng.standard_normal(n)
    return np.clip(speech, -1, 1).astype(np.float32)


def generate(count_per_label: int, seed: int, min_seconds: float = 1.0, max_seconds: float = 5.0):
    """Yield ``(emotion, samples, seconds, speaker)`` deterministically for ``seed``."""
    rng = np.random.default_rng(seed)
    for index in range(count_per_label * len(EMOTIONS)):
        emotion = EMOTIONS[index % len(EMOTIONS)]
        speaker = random_speaker(rng)
        seconds = float(np.round(rng.uniform(min_seconds, max_seconds), 2))
        snr = float(rng.uniform(20, 40))
        yield emotion, utterance(emotion, seconds, speaker, rng, snr), seconds, speaker


@dataclass(frozen=True)
class Turn:
    channel: int
    start: float     # seconds
    end: float
    emotion: str


def two_speaker_call(turns: list[tuple[int, str, float]], rng: np.random.Generator, pause: tuple[float, float] = (1.0, 2.0),
                     noise_dbfs: float = -65.0) -> tuple[np.ndarray, list[Turn]]:
    """A stereo call at 16 kHz: each turn ``(channel, emotion, seconds)`` is one utterance on its channel, turns
    separated by pauses drawn from ``pause``, both channels carrying a faint noise floor (a line's hiss).

    Returns the (frames, 2) samples and the ground truth: where each utterance lies and its emotion.
    Channel 0 and 1 keep one speaker each (agent and customer).
    """
    speakers = (Speaker(base_f0=115.0, tract_scale=1.0), Speaker(base_f0=200.0, tract_scale=1.12))
    position = rng.uniform(*pause)
    pieces, truth = [], []
    for channel, emotion, seconds in turns:
        start = int(position * SAMPLE_RATE)
        voice = utterance(emotion, seconds, speakers[channel], rng, snr_db=35.0)
        pieces.append((channel, start, voice))
        truth.append(Turn(channel, start / SAMPLE_RATE, (start + len(voice)) / SAMPLE_RATE, emotion))
        position = (start + len(voice)) / SAMPLE_RATE + rng.uniform(*pause)
    frames = int(position * SAMPLE_RATE)
    call = (10 ** (noise_dbfs / 20) * rng.standard_normal((frames, 2))).astype(np.float32)
    for channel, start, voice in pieces:
        call[start:start + len(voice), channel] += voice
    return np.clip(call, -1, 1), truth
