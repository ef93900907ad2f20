import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "handler"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-init tiny checkpoint, made once per session."""
    from ser_serve.checkpoint import make_preset_checkpoint

    return make_preset_checkpoint("tiny", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def classifier(tiny_checkpoint):
    from ser_serve import EmotionClassifier

    return EmotionClassifier.from_pretrained(tiny_checkpoint, device="cpu")
