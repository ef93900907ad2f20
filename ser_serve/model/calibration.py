"""Voice-like synthetic clips: calibration of reduced precision, and test signals for the tools and tests."""

from __future__ import annotations

import numpy as np


def voice(seconds: float, sample_rate: int = 16_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Harmonics of a wandering pitch plus a little noise, peak 0.3.

    Shape (frames,) for mono, (frames, channels) otherwise; each channel gets
    a different gain so that downmixing is observable. Deterministic per seed.
    """
    rng = np.random.default_rng(seed)
    frames = max(1, int(round(seconds * sample_rate)))
    t = np.arange(frames) / sample_rate
    pitch = rng.uniform(100, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(frames)
    signal = 0.3 * signal / np.abs(signal).max()
    if channels == 1:
        return signal.astype(np.float32)
    gains = np.linspace(1.0, 0.4, channels)
    return (signal[:, None] * gains[None, :]).astype(np.float32)


def calibration_clips() -> list[np.ndarray]:
    """The built-in clips a reduced-precision model is compared with float32 on (16 kHz, three lengths)."""
    return [voice(seconds, seed=seed) for seed, seconds in enumerate((1.3, 2.5, 4.0))]


def operator_clips(directory, limits=None) -> list[np.ndarray]:
    """Every audio file in ``directory`` (sorted by name), decoded to 16 kHz mono within ``limits``.

    The operator's calibration set: a file that does not decode is an error
    naming it, not a silently smaller set.
    """
    from pathlib import Path

    from ser_serve.audio import AudioLimits, load_waveform
    from ser_serve.errors import InvalidSettings, SerError

    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidSettings(f"precision.calibration_dir: {directory} is not a directory")
    files = sorted(path for path in directory.iterdir() if path.is_file() and not path.name.startswith("."))
    clips = []
    for path in files:
        try:
            clips.append(load_waveform(path.read_bytes(), limits or AudioLimits()))
        except SerError as exc:
            raise InvalidSettings(f"precision.calibration_dir: {path}: {exc}") from exc
    return clips
