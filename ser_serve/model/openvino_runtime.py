"""The ``openvino`` precision profile: the exact padded forward, exported once to OpenVINO and run by its CPU plugin.

The exported graph takes a zero-padded batch and each clip's length and
computes exactly what :func:`ser_serve.model.forward.padded_logits` computes
in PyTorch: the attention mask from the lengths, the group-norm conv stack
with its statistics over each clip's own frames (the masked path; a per-clip
loop would be traced with the example's lengths baked in), data2vec's
re-zeroed positional convolutions. So a clip's answer in a batch equals its
answer alone up to the profile's rounding, as in every profile, and the start
self-check and the guard test that in the worker.

On CPUs with native bfloat16 (AVX512-BF16, AMX) the plugin runs in bfloat16,
else in float32. Measured on this project's 2-core AMD EPYC host, base size,
24 clips of 1.4-4.4 s in exact batches (padding ratio 1.25), side by side:
PyTorch float32 1.00x, PyTorch bfloat16 1.88x, OpenVINO bfloat16 2.34x; the
plugin fuses what PyTorch runs op by op.
"""

from __future__ import annotations

import sys
import threading
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ser_serve.model import forward


class _PaddedForward(nn.Module):
    """(zero-padded input_values (batch, samples), lengths (batch,)) -> logits; what gets exported."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(input_values.shape[1])[None, :] < lengths[:, None]).long()
        token = forward._CLIP_LENGTHS.set(lengths)
        try:
            return self.model(input_values=input_values, attention_mask=mask).logits
        finally:
            forward._CLIP_LENGTHS.reset(token)


class OpenVinoForward:
    """An EmotionModel's forward compiled for OpenVINO's CPU plugin; :meth:`logits` of one padded group."""

    def __init__(self, model, example: Sequence[np.ndarray], threads: int):
        # No usage telemetry from a server: with its telemetry package unimportable, OpenVINO's
        # conversion uses its built-in no-op stub (otherwise it writes a client id to ~/intel and
        # sends events unless someone ran its opt-out tool on this host).
        sys.modules.setdefault("openvino_telemetry", None)
        import openvino as ov

        if model.device.type != "cpu":
            raise ValueError("openvino runs on a CPU here; GPU workers use bfloat16 or float16")
        if "per-clip conv encoder" in model.exactness_adapters:
            raise ValueError("this checkpoint's conv stack cannot be masked in an exported graph")
        clips = [torch.from_numpy(np.ascontiguousarray(f)) for f in example]
        if len({len(c) for c in clips}) < 2:
            raise ValueError("the example must mix lengths, so the masked path is the one exported")
        lengths = torch.tensor([len(c) for c in clips])
        with torch.no_grad():
            graph = ov.convert_model(_PaddedForward(model.model).eval(),
                                     example_input=(nn.utils.rnn.pad_sequence(clips, batch_first=True), lengths),
                                     input=[ov.PartialShape([-1, -1]), ov.PartialShape([-1])])
        core = ov.Core()
        self.precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": self.precision,
                                                     "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        self._request = compiled.create_infer_request()
        # One request, one pass at a time: the in-process gateway calls from several threads.
        self._lock = threading.Lock()
        self.passes = 0

    def logits(self, features: Sequence[np.ndarray]) -> torch.Tensor:
        """Logits of ``features`` (one group: lengths within the batch budget) from one padded pass."""
        lengths = np.array([len(f) for f in features], dtype=np.int64)
        batch = np.zeros((len(features), lengths.max()), dtype=np.float32)
        for row, clip in zip(batch, features):
            row[: len(clip)] = clip
        with self._lock:
            self.passes += 1
            return torch.from_numpy(self._request.infer({0: batch, 1: lengths})[0].copy())

