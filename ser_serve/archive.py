"""Build a self-contained TorchServe model archive (.mar) from a checkpoint directory.

The archive holds the handler, the ``ser_serve`` core, the checkpoint files,
``model-config.yaml`` and a requirements file pinned to the versions this
archive was built with, so a stock TorchServe with those packages serves it.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import yaml

from .audio import AudioLimits
from .checkpoint import WEIGHT_FILES, CHECKPOINT_FILES, validate_checkpoint

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
HANDLER_FILE = REPO_DIR / "handler" / "ser_handler.py"
DEFAULT_MODEL_CONFIG = PACKAGE_DIR / "defaults" / "model-config.yaml"
# What the handler imports at run time besides torch, which the server owns.
RUNTIME_PACKAGES = ("transformers", "safetensors", "numpy", "soundfile", "soxr", "av")


def runtime_requirements() -> str:
    """requirements.txt content pinned to the installed versions of the runtime packages."""
    return "".join(f"{name}=={metadata.version(name)}\n" for name in RUNTIME_PACKAGES)


def load_model_config(path: str | Path) -> dict:
    """Read a model-config.yaml and check the handler's section before it is packed."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    AudioLimits.from_mapping((config.get("ser") or {}).get("limits"))
    return config


def build_archive(
    checkpoint_dir: str | Path,
    export_dir: str | Path = "model_store",
    model_name: str = "ser",
    model_config: str | Path = DEFAULT_MODEL_CONFIG,
    version: str = "1.0",
    handler: str | Path = HANDLER_FILE,
) -> Path:
    """Validate ``checkpoint_dir`` and write ``<export_dir>/<model_name>.mar``; return its path.

    ``handler`` is the TorchServe handler file (the benchmark packs baselines this way).
    An invalid checkpoint raises :class:`ser_serve.errors.InvalidCheckpoint`
    before anything is written.
    """
    from model_archiver.model_packaging import ModelArchiverConfig, package_model
    from model_archiver.model_packaging_utils import ModelExportUtils

    checkpoint_dir = Path(checkpoint_dir)
    validate_checkpoint(checkpoint_dir)
    load_model_config(model_config)
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ser-mar-") as tmp:
        staging = Path(tmp) / "extra"
        shutil.copytree(PACKAGE_DIR, staging / "ser_serve", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        checkpoint_out = staging / "checkpoint"
        checkpoint_out.mkdir()
        for name in CHECKPOINT_FILES + WEIGHT_FILES:
            if (checkpoint_dir / name).is_file():
                shutil.copy2(checkpoint_dir / name, checkpoint_out / name)
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
        package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))
    return export_dir / f"{model_name}.mar"
