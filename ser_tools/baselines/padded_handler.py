"""Baseline 2 for the benchmark: the whole TorchServe batch padded to its longest clip.

The common way to batch wav2vec2: feature extractor with padding=True, one
forward. It wastes compute on padding and, for wav2vec2-base (no attention
mask, GroupNorm over time), changes the answers of the shorter clips.
"""

import json
import os

import torch

from ser_serve.audio import load_waveform
from ser_serve.model.emotion_model import EmotionModel
from ser_serve.response import to_response

_model = None


def handle(data, context):
    global _model
    if _model is None:
        settings = (context.model_yaml_config or {}).get("ser", {})
        torch.set_num_threads(int(settings.get("torch_threads", torch.get_num_threads())))
        _model = EmotionModel(os.path.join(context.system_properties["model_dir"], "checkpoint"), device="cpu")
    if data is None:
        return None
    audio = [load_waveform(bytes(request.get("data") or request.get("body"))) for request in data]
    inputs = _model.feature_extractor(audio, sampling_rate=16_000, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(_model.model(input_values=inputs["input_values"]).logits, dim=-1).numpy()
    return [json.dumps(to_response(row, _model.id2label)) for row in probabilities]
