"""Do a checkpoint's weights cover its architecture exactly? Fail closed when they do not.

``from_pretrained`` only warns about missing tensors and initialises them at
random, so a renamed or custom head would be served with a random layer that
differs on every worker start. Two checks share one verdict
(:func:`weight_problems`): at archive time from the file headers against the
model built on the meta device (cheap: no tensor is read), and at load time
from ``from_pretrained``'s loading info.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping


# Tensors a checkpoint may carry or lack without changing an inference answer:
# masked_spec_embed is the SpecAugment mask vector, used only while training
# (models have it when mask_time_prob > 0, and checkpoints saved with another
# setting do or do not). Nothing else: a pretraining quantizer or a custom
# head in the weights means the checkpoint is not what its config says.
IGNORED_SUFFIXES = ("masked_spec_embed",)
LISTED = 8  # names shown per kind before "and N more"


def weight_problems(
    class_name: str,
    missing: Iterable[str],
    unexpected: Iterable[str],
    mismatched: Iterable[tuple[str, tuple, tuple]] = (),
) -> list[str]:
    """Sentences naming the tensors that make a checkpoint unservable; [] when it is complete.

    ``mismatched`` holds ``(name, checkpoint shape, model shape)``.
    """
    missing = sorted(k for k in missing if not k.endswith(IGNORED_SUFFIXES))
    unexpected = sorted(k for k in unexpected if not k.endswith(IGNORED_SUFFIXES))
    problems = []
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"the checkpoint has no weights for {_names(missing)}")
        if unexpected:
            parts.append(f"it carries {_names(unexpected)} that {class_name} does not use")
        verdict = ("it was saved by a different model class" if unexpected
                   else "they would be initialised at random on every load")
        problems.append("; ".join(parts) + f": {verdict}")
    for name, saved, expected in sorted(mismatched):
        problems.append(f"{name} has shape {list(saved)} in the checkpoint but {list(expected)} in the "
                        f"{class_name} that config.json describes")
    return problems


def header_weight_problems(config, files: list[Path]) -> list[str]:
    """Compare the tensor names and shapes in the weight files' headers with the model ``config`` builds.

    ``config`` is the checkpoint's transformers config.
    The model is built on the meta device (no memory, no init); checkpoint
    names go through the same legacy renames ``from_pretrained`` applies
    (``weight_g``/``weight_v``, ``gamma``/``beta``, a missing base-model prefix).
    """
    import torch
    from transformers import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, rename_source_key

    model_class = MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING[type(config)]
    with torch.device("meta"):
        model = model_class(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    transforms = get_model_conversion_mapping(model)
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    renamings = [t for t in transforms if not isinstance(t, WeightConverter)]
    try:
        shapes = _header_shapes(files)
    except Exception as exc:  # a truncated file, a pickle that is not a plain state dict, ...
        return [f"the weights cannot be read ({' '.join(str(exc).split())[:300]})"]
    saved = {}
    for name, shape in shapes.items():
        renamed, _ = rename_source_key(name, renamings, converters, model.base_model_prefix, expected)
        saved[renamed] = shape
    mismatched = [(k, saved[k], expected[k]) for k in saved.keys() & expected.keys() if saved[k] != expected[k]]
    return weight_problems(model_class.__name__, expected.keys() - saved.keys(), saved.keys() - expected.keys(),
                           mismatched)


def _header_shapes(files: list[Path]) -> Mapping[str, tuple]:
    """Tensor name -> shape from safetensors headers (shards included) or a pickled state dict, reading no data."""
    shapes = {}
    for file in files:
        if file.name.endswith(".index.json"):
            continue
        if file.suffix == ".bin":
            import torch

            # mmap + meta: the pickle's structure is read, the tensor data is not.
            state = torch.load(file, map_location="meta", weights_only=True, mmap=True)
            shapes.update({name: tuple(t.shape) for name, t in state.items()})
            continue
        shapes.update(_safetensors_header(file))
    return shapes


def _safetensors_header(file: Path) -> dict[str, tuple]:
    # The format: 8 bytes little-endian header length, then a JSON header.
    with open(file, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    return {name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
