import sys
from pathlib import Path

import pytest
import yaml

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
    """Build an archive of ``checkpoint`` and start a TorchServe for it on free loopback ports.

    ``properties`` override config.properties keys for this server only.
    """
    from ser_serve.archive import DEFAULT_MODEL_CONFIG, build_archive
    from ser_serve.cli import DEFAULT_CONFIG
    from ser_serve.server import TorchServe, read_properties, with_free_ports, write_properties

    model_config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    model_config.update(model_config_overrides or {})
    model_config_path = tmp_path / "model-config.yaml"
    model_config_path.write_text(yaml.safe_dump(model_config))
    build_archive(checkpoint, tmp_path / "store", "ser", model_config_path)
    settings = {**with_free_ports(read_properties(DEFAULT_CONFIG)), **(properties or {})}
    config = write_properties(settings, tmp_path / "config.properties")
    return TorchServe(config, tmp_path / "store", tmp_path / "work").start()


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
