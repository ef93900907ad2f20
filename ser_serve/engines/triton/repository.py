"""Build a Triton model repository for the ``ser`` model from a checkpoint directory.

The repository is self-contained, like the TorchServe archive, and built
from the same parts (ser_serve.packaging)::

    <repository>/ser/config.pbtxt        Python backend, dynamic batching, AUDIO -> RESULT, PROBABILITIES
    <repository>/ser/labels.txt          id2label order, one per line (Triton's classification extension)
    <repository>/ser/model-config.yaml   the validated settings; the worker reads its ser: section
    <repository>/ser/requirements.txt    the runtime packages it was built with
    <repository>/ser/checkpoint/         config.json, preprocessor_config.json, weights
    <repository>/ser/1/model.py          entry: the adapter ser_serve.engines.triton.model
    <repository>/ser/1/ser_serve/        the runtime core and that adapter (the backend puts 1/ on sys.path)
    <repository>/ser-timeline/...        the same files for long recordings: one per request, RESULT only,
                                         entry ser_serve.engines.triton.model.TimelinePythonModel

Triton's batching comes from the same measured defaults as TorchServe's
(model-config.yaml's top-level keys): ``batchSize`` is ``max_batch_size``
and the preferred batch size, ``maxBatchDelay`` (ms) the queue delay,
``minWorkers`` the instance count.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from ser_serve.engines.triton.model import AUDIO, CHECKPOINT_SUBDIR, MODEL_CONFIG, PROBABILITIES, RESULT
from ser_serve.model.checkpoint import labels_from_config, validate_checkpoint
from ser_serve.names import MODEL, TIMELINE_MODEL, TIMELINE_QUEUE_SIZE
from ser_serve.packaging import (DEFAULT_MODEL_CONFIG, copy_checkpoint, copy_runtime, load_model_config,
                                 runtime_requirements, with_precision)

ADAPTER_FILES = ("engines/triton/__init__.py", "engines/triton/model.py")
ENTRY_SOURCE = '''"""Triton entry point of this model; the adapter is ser_serve.engines.triton.model."""

from ser_serve.engines.triton.model import TritonPythonModel  # noqa: F401
'''
TIMELINE_ENTRY_SOURCE = '''"""Triton entry point of this long-recording model; the adapter is ser_serve.engines.triton.model."""

from ser_serve.engines.triton.model import TimelinePythonModel as TritonPythonModel  # noqa: F401
'''
# Requests waiting beyond this are refused at once (503 / UNAVAILABLE) instead of queueing without bound.
MAX_QUEUE_SIZE = 64


def config_pbtxt(name: str, labels: list[str], engine: dict, gpu: bool = False, timeline: bool = False) -> str:
    """The model configuration, from model-config.yaml's engine keys (``engine``).

    ``timeline``: the long-recording model: one recording per execute (its windows are batched by the core), a
    queue of :data:`ser_serve.names.TIMELINE_QUEUE_SIZE` (as on TorchServe), RESULT only.
    """
    batch = 1 if timeline else int(engine.get("batchSize", 8))
    delay_us = int(float(engine.get("maxBatchDelay", 1)) * 1000)
    instances = int(engine.get("minWorkers", 1))
    probabilities = "" if timeline else (f',\n  {{ name: "{PROBABILITIES}" data_type: TYPE_FP32 dims: [ {len(labels)} ] '
                                         'label_filename: "labels.txt" }')
    return f"""# Written by ser-serve (ser_serve/engines/triton/repository.py) from model-config.yaml.
name: "{name}"
backend: "python"
max_batch_size: {batch}
input [
  {{ name: "{AUDIO}" data_type: TYPE_STRING dims: [ 1 ] }}
]
output [
  {{ name: "{RESULT}" data_type: TYPE_STRING dims: [ 1 ] }}{probabilities}
]
dynamic_batching {{
  preferred_batch_size: [ {batch} ]
  max_queue_delay_microseconds: {0 if timeline else delay_us}
  default_queue_policy {{ max_queue_size: {TIMELINE_QUEUE_SIZE if timeline else MAX_QUEUE_SIZE} }}
}}
instance_group [ {{ kind: {"KIND_GPU" if gpu else "KIND_CPU"} count: {instances} }} ]
"""


def build_repository(
    checkpoint_dir: str | Path,
    repository: str | Path,
    model_config: str | Path = DEFAULT_MODEL_CONFIG,
    precision: str | None = None,
    name: str = MODEL,
    gpu: bool = False,
    timeline: bool = True,
) -> Path:
    """Validate ``checkpoint_dir`` and ``model_config`` and write ``<repository>/<name>``; return the repository.

    With ``timeline`` (the default, as ``ser-serve serve`` registers both TorchServe archives) the long-recording
    model ``ser-timeline`` is written beside it. An invalid checkpoint or settings file raises before anything is
    written; an existing model folder of that name is replaced whole. ``precision`` replaces
    ``ser.precision.profile``; ``gpu`` puts the instances on GPU 0 (KIND_GPU).
    """
    checkpoint_dir, repository = Path(checkpoint_dir), Path(repository)
    config = validate_checkpoint(checkpoint_dir)
    values = load_model_config(model_config)
    if precision is not None:
        values = with_precision(values, precision)
    labels_by_id = labels_from_config(config)
    labels = [labels_by_id[i] for i in range(len(labels_by_id))]
    repository.mkdir(parents=True, exist_ok=True)
    _write_model(repository, name, checkpoint_dir, values, labels, gpu, timeline=False)
    if timeline:
        _write_model(repository, TIMELINE_MODEL, checkpoint_dir, values, labels, gpu, timeline=True)
    else:
        shutil.rmtree(repository / TIMELINE_MODEL, ignore_errors=True)  # a repository serves what it was asked
    return repository


def _write_model(repository: Path, name: str, checkpoint_dir: Path, values: dict, labels: list[str], gpu: bool,
                 timeline: bool) -> None:
    # Built next to its final place, then swapped in: a half-written model folder is never served.
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=repository) as tmp:
        model = Path(tmp) / name
        version = model / "1"
        version.mkdir(parents=True)
        copy_runtime(version, ADAPTER_FILES)
        (version / "model.py").write_text(TIMELINE_ENTRY_SOURCE if timeline else ENTRY_SOURCE)
        copy_checkpoint(checkpoint_dir, model / CHECKPOINT_SUBDIR)
        (model / MODEL_CONFIG).write_text(yaml.safe_dump(values, sort_keys=False))
        (model / "requirements.txt").write_text(runtime_requirements())
        (model / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
        (model / "config.pbtxt").write_text(config_pbtxt(name, labels, values, gpu, timeline))
        shutil.rmtree(repository / name, ignore_errors=True)
        model.rename(repository / name)
