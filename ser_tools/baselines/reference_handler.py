"""Baseline 1 for the benchmark: one request per forward, written like the model card's snippet.

Decoding uses the same ser_serve decoder as the real handler (the snippet's
soundfile/librosa cannot read every format we send), so the only difference
measured is the per-request inference.
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
    answers = []
    for request in data:
        audio = load_waveform(bytes(request.get("data") or request.get("body")))
        inputs = _model.feature_extractor(audio, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            logits = _model.model(**inputs).logits
        probabilities = torch.softmax(logits, dim=-1)[0].numpy()
        answers.append(json.dumps(to_response(probabilities, _model.id2label)))
    return answers
