"""The inference token a client sends: given directly, or read from TorchServe's key file."""

from __future__ import annotations

import json
from pathlib import Path


def inference_token(token: str | None, key_file: str | Path | None) -> str:
    """``token`` when given, else the inference key of a TorchServe key_file.json, else ""."""
    if token:
        return token
    if key_file:
        return json.loads(Path(key_file).read_text())["inference"]["key"]
    return ""
