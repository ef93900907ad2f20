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


def start_server(tmp_path, checkpoint, model_config_overrides=None, properties=None):
    """A started TorchServe for ``checkpoint`` on free loopback ports (see start_on_free_ports)."""
    from ser_serve.server import start_on_free_ports

    return start_on_free_ports(checkpoint, tmp_path, "ser", model_config_overrides, properties)


@pytest.fixture(scope="session")
def server(tiny_checkpoint, tmp_path_factory):
    """One real TorchServe for the session's integration tests; always stopped at the end."""
    # A long batch delay and batch size 4 so that concurrent requests really share batches.
    ts = start_server(tmp_path_factory.mktemp("ts"), tiny_checkpoint, {"batchSize": 4, "maxBatchDelay": 300})
    try:
        ts.wait_ready(timeout=180)
        yield ts
    finally:
        ts.stop()
