"""Load a validated checkpoint: its feature extractor and its model, by model_type, refusing incomplete weights."""

from __future__ import annotations

from pathlib import Path

from ser_serve.errors import InvalidCheckpoint
from ser_serve.model.checkpoint import SAMPLING_RATE
from ser_serve.model.weights import weight_problems


def load_checkpoint(path: str | Path):
    """``(feature_extractor, model)`` for a checkpoint directory; the model in eval mode on the CPU.

    The class comes from ``config.model_type`` (AutoModelForAudioClassification
    ignores ``architectures``). Any weight the checkpoint lacks, carries in
    excess or has in another shape raises :class:`InvalidCheckpoint` naming
    the tensors: transformers would otherwise initialise them at random.
    """
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    feature_extractor = AutoFeatureExtractor.from_pretrained(path)
    if getattr(feature_extractor, "sampling_rate", None) != SAMPLING_RATE:
        raise InvalidCheckpoint(f"{path} is not a servable checkpoint: its feature extractor expects "
                                f"{getattr(feature_extractor, 'sampling_rate', None)} Hz; this server feeds {SAMPLING_RATE} Hz.")
    # ignore_mismatched_sizes: report a shape mismatch in the loading info (refused below) instead of a bare RuntimeError.
    model, info = AutoModelForAudioClassification.from_pretrained(path, output_loading_info=True,
                                                                  ignore_mismatched_sizes=True)
    problems = weight_problems(type(model).__name__, info["missing_keys"], info["unexpected_keys"],
                               [(name, tuple(saved), tuple(expected)) for name, saved, expected in info["mismatched_keys"]])
    if problems:
        raise InvalidCheckpoint(f"{path} is not a servable checkpoint: " + "; ".join(problems) + ".")
    return feature_extractor, model.eval()
