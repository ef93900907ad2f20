"""Build a self-contained TorchServe model archive (.mar) from a checkpoint directory.

The archive holds the runtime core (``ser_serve`` minus the tooling), the
TorchServe adapter, the checkpoint files, ``model-config.yaml`` and a
requirements file pinned to the versions this archive was built with, so a
stock TorchServe with those packages serves it. Nothing else: no CLI, no
clients, no benchmark, load-test or training code.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import yaml

from ser_serve.model.checkpoint import CHECKPOINT_FILES, validate_checkpoint, weight_files
from ser_serve.settings import ServeSettings

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # the ser_serve package
DEFAULT_MODEL_CONFIG = Path(__file__).resolve().parent / "defaults" / "model-config.yaml"
# What a worker imports, relative to PACKAGE_DIR: the runtime core and this adapter.
RUNTIME_FILES = (
    "__init__.py", "errors.py", "settings.py", "batching.py", "response.py", "classifier.py", "vad.py", "timeline.py",
    "audio", "model",
    "engines/__init__.py", "engines/torchserve/__init__.py", "engines/torchserve/handler.py",
    "engines/torchserve/metrics.py",
)
# The archive's handler: TorchServe imports it as a top-level module from the archive root.
ENTRY_MODULE = "ser_handler.py"
ENTRY_SOURCE = '''"""TorchServe entry point of this archive; the handler is ser_serve.engines.torchserve.handler."""

from ser_serve.engines.torchserve.handler import handle  # noqa: F401
'''
# The timeline archive's entry: the same handler module, its long-recording service.
TIMELINE_ENTRY_SOURCE = '''"""TorchServe entry point of this timeline archive; the handler is ser_serve.engines.torchserve.handler."""

from ser_serve.engines.torchserve.handler import handle_timeline as handle  # noqa: F401
'''
TIMELINE_MODEL = "ser-timeline"
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
    "jobQueueSize": 4,
}
# What the handler imports at run time besides torch, which the server owns.
RUNTIME_PACKAGES = ("transformers", "safetensors", "numpy", "soundfile", "soxr", "av", "pydantic", "pyyaml",
                    "torchao", "webrtcvad-wheels")


def runtime_requirements() -> str:
    """requirements.txt content pinned to the installed versions of the runtime packages."""
    return "".join(f"{name}=={metadata.version(name)}\n" for name in RUNTIME_PACKAGES)


def load_model_config(path: str | Path) -> dict:
    """Read a model-config.yaml and validate its ``ser:`` section before anything is packed.

    Raises :class:`ser_serve.errors.InvalidSettings` naming the key and the reason.
    """
    config = yaml.safe_load(Path(path).read_text()) or {}
    ServeSettings.from_mapping(config.get("ser"), source=str(path))
    return config


def with_precision(config: dict, profile: str, path: Path) -> Path:
    """Write ``config`` with ``ser.precision.profile`` set to ``profile`` to ``path`` (validated first)."""
    ser = dict(config.get("ser") or {})
    ser["precision"] = {**(ser.get("precision") or {}), "profile": profile}
    ServeSettings.from_mapping(ser, source=f"--precision {profile}")
    path.write_text(yaml.safe_dump({**config, "ser": ser}, sort_keys=False))
    return path


def copy_runtime(destination: Path) -> Path:
    """Copy the runtime core and the TorchServe adapter into ``destination/ser_serve``."""
    target = destination / "ser_serve"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for relative in RUNTIME_FILES:
        source, copy = PACKAGE_DIR / relative, target / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=ignore)
        else:
            shutil.copy2(source, copy)
    return target


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
            model_config = with_precision(config_values, precision, Path(tmp) / "model-config.yaml")
            config_values = yaml.safe_load(model_config.read_text())
        staging = Path(tmp) / "extra"
        copy_runtime(staging)
        checkpoint_out = staging / "checkpoint"
        checkpoint_out.mkdir()
        # One weight format only (the one transformers loads), shards with their index.
        for source in [checkpoint_dir / name for name in CHECKPOINT_FILES] + weight_files(checkpoint_dir):
            shutil.copy2(source, checkpoint_out / source.name)
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
