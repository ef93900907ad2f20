"""Frame-level prosody targets: an auxiliary task that teaches the model to hear pitch and rhythm in any voice.

Why. Trained on emotion labels alone, the demo model learns whichever cues
separate the labels in the voices it trained on — and many of those are the
voices' own fingerprints. On a voice generator it never heard it was right on
26-37 % of clips, while gradient-boosted trees on eleven hand-made prosodic
measures of the same clips (pitch level, range and final movement, voiced
share, energy-peak rate, duration; ``python -m ser_train.prosody_probe``) were
right on 44-48 % of an unheard engine's clips. The cues are there; the model
was not made to find them.

What. For every training clip, once, before training: per model frame (the
conv stack's hop, 20 ms), its pitch in semitones (YIN), whether it is voiced,
and its energy relative to the clip's loudest frame. A linear head on the
last hidden state predicts these three while the classifier learns the label
(``ser-serve train --prosody-weight W``). The head is thrown away after
training: the saved checkpoint is an ordinary Wav2Vec2ForSequenceClassification
of the same shape, loaded and served as any other.

Targets are measured on the clean clip; the channel augmentation (noise, room,
band-limiting, codecs) keeps the timing and the pitch, so the targets still
hold, and a voice shift (``--voice-augment``) moves the pitch targets with it.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

SAMPLE_RATE = 16_000
# YIN's search range: below and above any voice the generators make (and most people).
F0_MIN, F0_MAX = 60.0, 600.0
# Semitones re 100 Hz, scaled so that typical voices fall within about ±1.
F0_CENTRE, F0_SCALE = 6.0, 8.0
ENERGY_FLOOR_DB = -50.0
CHANNELS = 3  # pitch, voicing, energy


def frame_targets(waveform: np.ndarray, hop: int, relative: bool = False) -> np.ndarray:
    """(frames, 3) float32: scaled pitch (0 where unvoiced), voiced (0/1), energy in dB re the loudest frame / 50 + 1.

    Frame i covers samples [i * hop, i * hop + 1024), about what the model's frame i hears (the small preset's
    conv stack sees 905 samples per frame). A frame counts as voiced when it is
    within 25 dB of the loudest, YIN's pitch is inside its (speaker-adapted) search range, and
    the pitch agrees with its neighbours' (an octave error or noise does not).
    """
    x = np.asarray(waveform, dtype=np.float32)
    if len(x) < 2048:
        x = np.pad(x, (0, 2048 - len(x)))
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=hop, center=False)[0]
    energy_db = np.maximum(20 * np.log10(rms / (rms.max() + 1e-12) + 1e-12), ENERGY_FLOOR_DB)
    loud = energy_db > -25
    # Two passes, as pitch trackers adapt to the speaker: the clip's median pitch over loud frames first, then
    # YIN again within a bit less than an octave of it either way, where octave errors cannot land.
    # (YIN and the RMS use the same frames, so their lengths agree.)
    centre = float(np.median(_yin(x, hop, F0_MIN, F0_MAX)[loud])) if loud.any() else 150.0
    low, high = max(F0_MIN, centre / 1.8), min(F0_MAX, centre * 1.8)
    f0 = _yin(x, hop, low, high)
    semitones = 12 * np.log2(f0 / 100.0)
    neighbours = np.median(np.stack([np.roll(semitones, 1), semitones, np.roll(semitones, -1)]), axis=0)
    voiced = loud & (f0 > low * 1.03) & (f0 < high * 0.97) & (np.abs(semitones - neighbours) < 1.5)
    # Relative: the pitch movement around the clip's own median (the contour, not the voice's level).
    centre_st = float(np.median(semitones[voiced])) if relative and voiced.any() else F0_CENTRE
    pitch = np.where(voiced, (semitones - centre_st) / F0_SCALE, 0.0)
    return np.stack([pitch, voiced.astype(np.float32), energy_db / -ENERGY_FLOOR_DB + 1.0], axis=1).astype(np.float32)


def _yin(x: np.ndarray, hop: int, low: float, high: float) -> np.ndarray:
    return librosa.yin(x, fmin=low, fmax=high, sr=SAMPLE_RATE, frame_length=1024, hop_length=hop, center=False)


def crop_targets(targets: np.ndarray, offset: int, frames: int, hop: int) -> np.ndarray:
    """The target frames of a crop starting at sample ``offset``, ``frames`` long (zero-padded: unvoiced silence)."""
    start = int(round(offset / hop))
    out = np.zeros((frames, CHANNELS), dtype=np.float32)
    piece = targets[start : start + frames]
    out[: len(piece)] = piece
    return out


def shift_pitch(targets: np.ndarray, semitones: float) -> np.ndarray:
    """Targets of the clip after its voice was shifted by ``semitones``: the voiced frames' pitch moves with it."""
    if not semitones:
        return targets
    shifted = targets.copy()
    voiced = shifted[:, 1] > 0
    shifted[voiced, 0] += semitones / F0_SCALE
    return shifted


class ProsodyHead(torch.nn.Module):
    """A linear read-out of pitch, voicing and energy from each frame's last hidden state (training only)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, CHANNELS)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Pitch: squared error on voiced frames; voicing: binary cross-entropy; energy: squared error."""
        prediction = self.linear(hidden.float())
        frames = min(prediction.shape[1], targets.shape[1])
        prediction, targets = prediction[:, :frames], targets[:, :frames]
        voiced = targets[..., 1]
        pitch = ((prediction[..., 0] - targets[..., 0]) ** 2 * voiced).sum() / voiced.sum().clamp(min=1.0)
        voicing = torch.nn.functional.binary_cross_entropy_with_logits(prediction[..., 1], voiced)
        energy = ((prediction[..., 2] - targets[..., 2]) ** 2).mean()
        return pitch + voicing + energy


class ClipMeasureHead(torch.nn.Module):
    """A linear read-out of a clip's prosodic measures (``ser_train.prosody_probe.MEASURES``, standardised)
    from its mean-pooled last hidden state, the pooling the classifier uses (training only).

    The probe's boosted trees on these eleven measures score a text-to-speech engine they never heard better
    than the demo network does; this task asks the network's clip summary to carry exactly those measures.
    """

    def __init__(self, hidden_size: int, measures: int, weights: torch.Tensor | None = None):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, measures)
        # Each measure's share of the loss (1 each by default): 0 asks nothing of the network for that measure.
        self.register_buffer("weights", torch.ones(measures) if weights is None else weights.float())

    def loss(self, hidden: torch.Tensor, measures: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the batch's clips and measures, each measure's error times its weight."""
        errors = (self.linear(hidden.float().mean(dim=1)) - measures) ** 2
        return (errors * self.weights).mean()
