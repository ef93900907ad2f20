"""What an engine's package of a model holds, whichever the engine: runtime core, checkpoint, settings, pins.

TorchServe's archive (.mar) and Triton's model repository are built from the
same parts, so both engines serve the same code with the same settings: the
runtime core (``ser_serve`` minus tooling, plus the engine's adapter), one
copy of the checkpoint in the one weight format transformers loads, the
validated ``model-config.yaml`` and a requirements file pinned to the
versions the package was built with.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path
from typing import Iterable

import yaml

from ser_serve.model.checkpoint import CHECKPOINT_FILES, weight_files
from ser_serve.settings import ServeSettings

PACKAGE_DIR = Path(__file__).resolve().parent  # the ser_serve package
# Worker, batching and request limits measured on the reference host; both engines read it.
DEFAULT_MODEL_CONFIG = PACKAGE_DIR / "defaults" / "model-config.yaml"
# What any worker imports, relative to PACKAGE_DIR; each engine adds its adapter's files.
CORE_FILES = (
    "__init__.py", "errors.py", "settings.py", "batching.py", "response.py", "classifier.py", "vad.py", "timeline.py",
    "worker.py", "decode_pool.py", "allocator.py", "audio", "model", "engines/__init__.py",
)
# What a worker imports at run time besides torch, which the engine's environment owns.
RUNTIME_PACKAGES = ("transformers", "safetensors", "numpy", "soundfile", "soxr", "av", "pydantic", "pyyaml",
                    "torchao", "openvino", "webrtcvad-wheels")


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


def with_precision(config: dict, profile: str) -> dict:
    """``config`` with ``ser.precision.profile`` set to ``profile`` (validated)."""
    ser = dict(config.get("ser") or {})
    ser["precision"] = {**(ser.get("precision") or {}), "profile": profile}
    ServeSettings.from_mapping(ser, source=f"--precision {profile}")
    return {**config, "ser": ser}


def copy_runtime(destination: Path, adapter_files: Iterable[str]) -> Path:
    """Copy the runtime core and an engine's ``adapter_files`` (relative to the package) into ``destination/ser_serve``."""
    target = destination / "ser_serve"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for relative in (*CORE_FILES, *adapter_files):
        source, copy = PACKAGE_DIR / relative, target / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=ignore)
        else:
            shutil.copy2(source, copy)
    return target


def copy_checkpoint(checkpoint_dir: Path, destination: Path) -> Path:
    """Copy the checkpoint's config files and one weight format (shards with their index) to ``destination``."""
    destination.mkdir(parents=True)
    for source in [checkpoint_dir / name for name in CHECKPOINT_FILES] + weight_files(checkpoint_dir):
        shutil.copy2(source, destination / source.name)
    return destination
