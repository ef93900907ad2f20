"""Build a self-contained TorchServe model archive (.mar) from a checkpoint directory.

The archive holds the runtime core (``ser_serve`` minus the tooling), the
TorchServe adapter, the checkpoint files, ``model-config.yaml`` and a
requirements file pinned to the versions this archive was built with, so a
stock TorchServe with those packages serves it. Nothing else: no CLI, no
clients, no benchmark, load-test or training code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from ser_serve.model.checkpoint import validate_checkpoint
from ser_serve.names import TIMELINE_MODEL, TIMELINE_QUEUE_SIZE
from ser_serve.packaging import (DEFAULT_MODEL_CONFIG, copy_checkpoint, copy_runtime, load_model_config,
                                 runtime_requirements, with_precision)

# The adapter's files a worker imports, relative to the ser_serve package (the core comes from packaging).
ADAPTER_FILES = ("engines/torchserve/__init__.py", "engines/torchserve/handler.py", "engines/torchserve/metrics.py")
# The archive's handler: TorchServe imports it as a top-level module from the archive root.
ENTRY_MODULE = "ser_handler.py"
ENTRY_SOURCE = '''"""TorchServe entry point of this archive; the handler is ser_serve.engines.torchserve.handler."""

from ser_serve.engines.torchserve.handler import handle  # noqa: F401
'''
# The timeline archive's entry: the same handler module, its long-recording service.
TIMELINE_ENTRY_SOURCE = '''"""TorchServe entry point of this timeline archive; the handler is ser_serve.engines.torchserve.handler."""

from ser_serve.engines.torchserve.handler import handle_timeline as handle  # noqa: F401
'''
# Top-level model-config.yaml keys the timeline archive sets over the clip
# model's; its `ser:` section (limits, vad, timeline) is the same file's.
TIMELINE_OVERRIDES = {
    # One recording per handler call: the timeline batches its own windows, and
    # TorchServe batching several hour-long uploads would only queue them in one worker.
    "batchSize": 1,
    "maxBatchDelay": 1,
    # An hour of stereo speech is 7,200 s of audio per lane pair; at the base
    # model's 12.8 audio-s/s on 2 cores that is about 10 minutes: allow 2 h of stereo.
    "responseTimeout": 3600,
    # The frontend holds each queued upload (up to max_request_size, 136 MiB)
    # in its 2 GiB heap: 4 waiting recordings stay far below it; more get a quick 503.
    "jobQueueSize": TIMELINE_QUEUE_SIZE,
}


def build_archive(
    checkpoint_dir: str | Path,
    export_dir: str | Path = "model_store",
    model_name: str = "ser",
    model_config: str | Path = DEFAULT_MODEL_CONFIG,
    version: str = "1.0",
    handler: str | Path | None = None,
    precision: str | None = None,
    timeline: bool = False,
) -> Path:
    """Validate ``checkpoint_dir`` and ``model_config``, write ``<export_dir>/<model_name>.mar``; return its path.

    The checkpoint check includes its weights against its architecture (see
    ser_serve.model.weights): a checkpoint that would load with a random
    layer never becomes an archive.

    ``handler`` replaces the archive's entry module with another handler file
    (the benchmark packs its baselines this way). ``precision`` replaces
    ``ser.precision.profile`` of ``model_config`` in the archive. ``timeline``
    builds the long-recording model instead (``ser-timeline``): same checkpoint
    and runtime, the timeline entry point and :data:`TIMELINE_OVERRIDES`. An
    invalid checkpoint or settings file raises before anything is written.
    """
    from model_archiver.model_packaging import ModelArchiverConfig, package_model
    from model_archiver.model_packaging_utils import ModelExportUtils

    checkpoint_dir = Path(checkpoint_dir)
    validate_checkpoint(checkpoint_dir)
    config_values = load_model_config(model_config)
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ser-mar-") as tmp:
        if precision is not None:
            config_values = with_precision(config_values, precision)
            model_config = Path(tmp) / "model-config.yaml"
            model_config.write_text(yaml.safe_dump(config_values, sort_keys=False))
        staging = Path(tmp) / "extra"
        copy_runtime(staging, ADAPTER_FILES)
        copy_checkpoint(checkpoint_dir, staging / "checkpoint")
        if handler is None:
            handler = Path(tmp) / ENTRY_MODULE
            handler.write_text(TIMELINE_ENTRY_SOURCE if timeline else ENTRY_SOURCE)
        if timeline:
            model_config = Path(tmp) / "model-config.yaml"
            model_config.write_text(yaml.safe_dump({**config_values, **TIMELINE_OVERRIDES}, sort_keys=False))
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(runtime_requirements())
        config = ModelArchiverConfig(
            model_name=model_name,
            handler=str(handler),
            version=version,
            extra_files=str(staging),
            export_path=str(export_dir),
            requirements_file=str(requirements),
            config_file=str(model_config),
            force=True,
        )
        # model-archiver stages files in <tempdir>/<model name>, shared by every
        # build of that name on the machine: two replicas starting at once
        # would delete each other's staging. Give it this build's own tempdir.
        shared_tempdir, tempfile.tempdir = tempfile.tempdir, tmp
        try:
            package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))
        finally:
            tempfile.tempdir = shared_tempdir
    return export_dir / f"{model_name}.mar"
