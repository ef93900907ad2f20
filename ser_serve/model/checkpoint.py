"""Checkpoint directories: what the server accepts, checked before anything loads.

A servable checkpoint is a Hugging Face directory with ``config.json`` (an
audio-classification model of the wav2vec2 family, with ``id2label``),
weights (``model.safetensors``, ``pytorch_model.bin``, or either sharded
with its ``*.index.json``) that cover the
architecture exactly, and ``preprocessor_config.json`` at 16 kHz. Nothing is
ever downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from ser_serve.errors import InvalidCheckpoint

# model_type -> the class AutoModelForAudioClassification builds for it. Only
# the wav2vec2 family: their forward passes are the ones ser_serve.model.forward
# batches exactly (and the tests prove it for each).
SUPPORTED_MODEL_TYPES = {
    "wav2vec2": "Wav2Vec2ForSequenceClassification",
    "hubert": "HubertForSequenceClassification",
    "wavlm": "WavLMForSequenceClassification",
    "data2vec-audio": "Data2VecAudioForSequenceClassification",
}
SAMPLING_RATE = 16_000
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PYTORCH_BIN, PYTORCH_BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
# In the order transformers prefers them when several are present.
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH_BIN, PYTORCH_BIN_INDEX)
CHECKPOINT_FILES = ("config.json", "preprocessor_config.json")
REGRESSION = "regression"
MULTI_LABEL = "multi_label_classification"


def weight_files(path: str | Path) -> list[Path]:
    """The weight files transformers loads from ``path``: one format only (safetensors first), shards included.

    [] when there are none. An index that names a missing shard raises
    :class:`InvalidCheckpoint`.
    """
    path = Path(path)
    for name in WEIGHT_FILES:
        if not (path / name).is_file():
            continue
        if not name.endswith(".index.json"):
            return [path / name]
        try:
            shards = sorted(set(json.loads((path / name).read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise InvalidCheckpoint(f"{path / name} is not a weight index ({exc!r})") from exc
        missing = [shard for shard in shards if not (path / shard).is_file()]
        if missing:
            raise InvalidCheckpoint(f"{path} is not a servable checkpoint: {name} lists shards that are missing: "
                                    f"{', '.join(missing)}.")
        return [path / name] + [path / shard for shard in shards]
    return []


def labels_from_config(config: dict) -> dict[int, str]:
    """``config.json``'s ``id2label`` with integer ids (JSON keys are strings); raises on anything else."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise InvalidCheckpoint("config.json has no id2label, so the labels are unknown")
    try:
        labels = {int(i): str(label) for i, label in id2label.items()}
    except (TypeError, ValueError) as exc:
        raise InvalidCheckpoint(f"config.json id2label keys must be integers 0..N-1, got {sorted(map(str, id2label))}") from exc
    if sorted(labels) != list(range(len(labels))):
        raise InvalidCheckpoint("config.json id2label ids are not 0..N-1")
    return labels


def config_problems(config: dict) -> list[str]:
    """What in ``config.json`` makes it unservable: model type, class, head, labels."""
    problems = []
    model_type = config.get("model_type")
    expected = SUPPORTED_MODEL_TYPES.get(model_type)
    if expected is None:
        problems.append(f"config.json model_type is {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    architectures = config.get("architectures") or []
    if expected and architectures and expected not in architectures:
        problems.append(
            f"config.json architectures is {architectures}; AutoModelForAudioClassification builds {expected} for "
            f"model_type {model_type!r}, so a checkpoint saved by another class would be served with other layers"
        )
    if config.get("add_adapter"):
        problems.append("config.json sets add_adapter, which sequence classification does not support")
    if config.get("problem_type") == REGRESSION:
        problems.append("config.json problem_type is 'regression': the server answers label probabilities, "
                        "not regression values")
    try:
        labels = labels_from_config(config)
    except InvalidCheckpoint as exc:
        problems.append(str(exc))
    else:
        if len(labels) == 1 and config.get("problem_type") != REGRESSION:
            problems.append("config.json has a single label: a one-output head is a regression head, "
                            "not label probabilities")
        if config.get("num_labels") not in (None, len(labels)):
            problems.append(f"config.json num_labels is {config['num_labels']} but id2label has {len(labels)}")
    return problems


def validate_checkpoint(path: str | Path, check_weights: bool = True) -> dict:
    """Check that ``path`` is a servable checkpoint and return its parsed config.

    Checks the files, ``config.json`` (see :func:`config_problems`, then
    transformers' own validation), the preprocessor's sampling rate and,
    with ``check_weights``, that the
    weights' names and shapes are exactly the architecture's (read from the
    file headers; no tensor is loaded). Raises :class:`InvalidCheckpoint`
    naming everything that is missing or wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise InvalidCheckpoint(f"{path} is not a directory; pass a Hugging Face checkpoint directory.")
    problems = [f"{name} is missing" for name in CHECKPOINT_FILES if not (path / name).is_file()]
    weights = weight_files(path)
    if not weights:
        problems.append(f"weights are missing (expected one of {', '.join(WEIGHT_FILES)})")
    config = _read_json(path / "config.json", problems)
    if config:
        problems += config_problems(config)
    preprocessor = _read_json(path / "preprocessor_config.json", problems)
    if preprocessor and preprocessor.get("sampling_rate", SAMPLING_RATE) != SAMPLING_RATE:
        problems.append(f"preprocessor_config.json sampling_rate is {preprocessor['sampling_rate']}; "
                        f"this server feeds {SAMPLING_RATE} Hz")
    if not problems:
        transformers_config = _transformers_config(path, problems)
        if transformers_config is not None and check_weights:
            from ser_serve.model.weights import header_weight_problems

            problems += header_weight_problems(transformers_config, weights)
    if problems:
        raise InvalidCheckpoint(f"{path} is not a servable checkpoint: " + "; ".join(problems) + ".")
    return config


def _transformers_config(path: Path, problems: list[str]):
    """The config as transformers reads it (its own validation included), or None with the reason in ``problems``."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception as exc:  # transformers raises several types for a config it rejects
        problems.append(f"transformers cannot read config.json ({' '.join(str(exc).split())})")
        return None


def _read_json(file: Path, problems: list[str]) -> dict:
    if not file.is_file():
        return {}
    try:
        value = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        problems.append(f"{file.name} is not valid JSON ({exc})")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{file.name} is not a JSON object")
        return {}
    return value
