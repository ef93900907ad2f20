"""A reproducible mix of encoded clips shaped like CREMA-D traffic.

CREMA-D utterances last 1.3-5 s (mean about 2.5 s). Uploads arrive in mixed
formats and sample rates. Benchmarks and load tests draw from the same mix,
generate it once and cache it on disk, never per request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ser_tools.encode import encode
from ser_serve.model.calibration import voice


@dataclass(frozen=True)
class ClipMix:
    """What the clips look like; every field is configurable."""

    count: int = 48
    min_seconds: float = 1.3
    max_seconds: float = 5.0
    mean_seconds: float = 2.5
    # Share of each format; normalised, so any positive weights work.
    formats: dict = field(default_factory=lambda: {"wav": 0.4, "mp3": 0.2, "m4a": 0.2, "flac": 0.1, "ogg": 0.1})
    sample_rates: tuple = (16_000, 44_100, 48_000)
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Clip:
    name: str
    format: str
    seconds: float
    data: bytes


def durations(mix: ClipMix, rng: np.random.Generator) -> np.ndarray:
    """Durations in [min, max] with the requested mean: a shifted gamma, redrawn where it overshoots."""
    excess_mean = mix.mean_seconds - mix.min_seconds
    values = np.empty(0)
    while len(values) < mix.count:
        draw = mix.min_seconds + rng.gamma(shape=2.0, scale=excess_mean / 2.0, size=mix.count * 2)
        values = np.concatenate([values, draw[draw <= mix.max_seconds]])
    return np.round(values[: mix.count], 3)


def make_clips(mix: ClipMix = ClipMix()) -> list[Clip]:
    """Encode the mix: deterministic for a given ``mix`` (seed included)."""
    rng = np.random.default_rng(mix.seed)
    names = sorted(mix.formats)
    weights = np.array([mix.formats[n] for n in names], dtype=float)
    formats = rng.choice(names, size=mix.count, p=weights / weights.sum())
    clips = []
    for i, (seconds, fmt) in enumerate(zip(durations(mix, rng), formats)):
        rate = int(rng.choice(mix.sample_rates))
        if fmt == "opus":
            rate = 48_000
        channels = int(rng.choice([1, 2], p=[0.8, 0.2]))
        data = encode(voice(float(seconds), rate, channels, seed=mix.seed * 100_003 + i), rate, fmt)
        clips.append(Clip(name=f"clip{i:04d}.{fmt}", format=fmt, seconds=float(seconds), data=data))
    return clips


def load_or_make_clips(mix: ClipMix = ClipMix(), cache_dir: str | Path = "build/clips") -> list[Clip]:
    """The clips of ``mix``, generated once into ``cache_dir/<mix key>/`` and read back afterwards."""
    folder = Path(cache_dir) / mix.key()
    index = folder / "index.json"
    if index.exists():
        entries = json.loads(index.read_text())
        return [Clip(e["name"], e["format"], e["seconds"], (folder / e["name"]).read_bytes()) for e in entries]
    clips = make_clips(mix)
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        (folder / clip.name).write_bytes(clip.data)
    index.write_text(json.dumps([{"name": c.name, "format": c.format, "seconds": c.seconds} for c in clips], indent=1))
    return clips
