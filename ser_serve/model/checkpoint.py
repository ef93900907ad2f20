"""Checkpoint directories: what the server accepts, checked before anything loads.

A servable checkpoint is a Hugging Face directory with ``config.json`` (a
``Wav2Vec2ForSequenceClassification`` with ``id2label``), weights
(``model.safetensors`` or ``pytorch_model.bin``) and
``preprocessor_config.json``. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from ser_serve.errors import InvalidCheckpoint

ARCHITECTURE = "Wav2Vec2ForSequenceClassification"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CHECKPOINT_FILES = ("config.json", "preprocessor_config.json")

def validate_checkpoint(path: str | Path) -> dict:
    """Check that ``path`` is a servable checkpoint and return its parsed config.

    Raises :class:`InvalidCheckpoint` naming everything that is missing or wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise InvalidCheckpoint(f"{path} is not a directory; pass a Hugging Face checkpoint directory.")
    problems = [f"{name} is missing" for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        problems.append(f"weights are missing (expected one of {', '.join(WEIGHT_FILES)})")
    config: dict = {}
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"config.json is not valid JSON ({exc})")
    if config:
        architectures = config.get("architectures") or []
        if ARCHITECTURE not in architectures:
            problems.append(
                f"config.json architectures is {architectures or 'not set'}; expected {ARCHITECTURE}"
            )
        id2label = config.get("id2label")
        if not id2label:
            problems.append("config.json has no id2label, so the labels are unknown")
        elif sorted(int(i) for i in id2label) != list(range(len(id2label))):
            problems.append("config.json id2label ids are not 0..N-1")
    if problems:
        raise InvalidCheckpoint(f"{path} is not a servable checkpoint: " + "; ".join(problems) + ".")
    return config
