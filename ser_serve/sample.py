"""The clip `ser-serve sample` writes and `ser-serve serve` suggests trying."""

from __future__ import annotations

from pathlib import Path


def write_synthetic_sample(out: Path) -> None:
    """A synthetic 'happy' utterance from the voice the demo model was trained on, in ``out``'s format."""
    import numpy as np

    from ser_tools.encode import encode
    from ser_train.synth import Speaker, utterance

    fmt = out.suffix.lstrip(".").lower() or "wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = utterance("happy", 2.5, Speaker(base_f0=190.0, tract_scale=1.1), np.random.default_rng(1), snr_db=35)
    out.write_bytes(encode(samples, 16_000, fmt))


def write_serve_sample(path: Path) -> str:
    """The demo's 'happy' voice, or (without the training extra) a plain voice-like tone; says which."""
    try:
        write_synthetic_sample(path)
        return "a synthetic 'happy' utterance"
    except ImportError:  # scipy (training extra) not installed: the server itself does not need it
        import soundfile

        from ser_serve.model.calibration import voice

        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, voice(2.5), 16_000)
        return "a voice-like test tone"
