"""A loaded checkpoint with exact, length-aware batched inference.

Loading and its integrity checks live in ``checkpoint``, ``weights`` and
``loading``; the batched forward and why it is exact for every supported
shape in ``forward`` (see docs/batching.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ser_serve.audio import TARGET_SAMPLE_RATE
from ser_serve.batching import BatchBudget, plan_groups
from ser_serve.errors import OutOfMemory
from ser_serve.model import forward, precision
from ser_serve.model.checkpoint import MULTI_LABEL, labels_from_config, validate_checkpoint
from ser_serve.model.calibration import calibration_clips
from ser_serve.model.loading import load_checkpoint
from ser_serve.settings import PrecisionSettings


class EmotionModel:
    """A loaded checkpoint: feature extractor, model and labels, ready for batches."""

    def __init__(
        self,
        checkpoint_dir: str | Path,
        device: str | torch.device | None = None,
        budget: BatchBudget = BatchBudget(),
        dtype: torch.dtype = torch.float32,
    ):
        # The weights are checked by from_pretrained's loading info below; the header check is the archive's.
        config = validate_checkpoint(checkpoint_dir, check_weights=False)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            # TF32 convolutions (cuDNN's default) pick different kernels for
            # different batch shapes and moved a clip's probabilities by
            # 1.8e-5 between batched and alone on an H100: keep full fp32.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.dtype = dtype
        self.budget = budget
        self.feature_extractor, self.model = load_checkpoint(self.checkpoint_dir)
        self.exactness_adapters = forward.make_exact(self.model)
        self.model.to(device=self.device, dtype=dtype)
        self.id2label = labels_from_config(config)
        # A multi-label head was trained with independent sigmoids (BCE): its
        # scores are per label and do not sum to 1; softmax would distort them.
        self.multi_label = config.get("problem_type") == MULTI_LABEL
        # The precision profile the forward runs in (ser_serve.model.precision); see use_precision.
        self.profile = precision.FLOAT32
        self.precision_choice = precision.Choice(precision.FLOAT32)
        # Another runtime's compiled forward (the openvino profile), else None: PyTorch.
        self.runtime = None
        # Forward passes that mixed lengths (logged by the handler: shows batching at work).
        self.padded_passes = 0

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Normalise one 16 kHz waveform exactly as the checkpoint's preprocessor_config.json says."""
        return features_of(self.feature_extractor, waveform)

    def use_precision(self, settings: PrecisionSettings, extra_clips: Sequence[np.ndarray] = ()) -> precision.Choice:
        """Run in ``settings.profile`` if it passes the guard against float32 (``auto``: the fastest that does).

        The guard compares on the built-in calibration clips plus
        ``extra_clips`` (16 kHz waveforms, e.g. the operator's); ``auto``
        times on the built-in clips only, so its start-up time is bounded:
        on a CPU one pass over them, on a GPU a batch of 32 of them, since
        GPU workers batch large and reduced precision pays only there (on an
        H200, bfloat16 ran 0.9x float32 at batch 8 and 1.9x at batch 32).
        """
        builtin = [self.features(clip) for clip in calibration_clips()]
        features = builtin + [self.features(clip) for clip in extra_clips]
        timing = [builtin[i % len(builtin)] for i in range(32)] if self.device.type == "cuda" else builtin
        self.precision_choice = precision.choose(self, settings.profile, features, settings.guard, timing,
                                                 settings.auto_seconds)
        return self.precision_choice

    def predict_proba(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Scores, shape (len(features), num_labels), for normalised inputs.

        Softmax probabilities, or per-label sigmoids for a multi-label
        checkpoint. Each clip's row equals what the clip gets alone (within
        float rounding), whatever else is in the batch. A failed forward pass raises.
        """
        rows = self.predict_proba_each(features)
        for row in rows:
            if isinstance(row, Exception):
                raise row
        return np.stack(rows) if rows else np.zeros((0, len(self.id2label)), dtype=np.float32)

    @torch.inference_mode()
    def predict_proba_each(self, features: Sequence[np.ndarray]) -> list[np.ndarray | Exception]:
        """One row of scores per input, or the exception of the forward pass it was in.

        Forward passes are independent: one that fails (e.g. out of memory
        for the longest clips) fails only its own clips, never the others.
        """
        rows: list[np.ndarray | Exception | None] = [None] * len(features)
        for group in plan_groups([len(f) for f in features], self.budget):
            try:
                scores = self._one_pass([features[i] for i in group])
            except torch.OutOfMemoryError as exc:
                failure = OutOfMemory("The server ran out of memory for this batch; retry later or send shorter audio.")
                failure.__cause__ = exc
                scores = [failure] * len(group)
            except Exception as exc:
                scores = [exc] * len(group)
            for row, index in zip(scores, group):
                rows[index] = row
        return rows

    @torch.inference_mode()
    def batching_difference(self, waveforms: Sequence[np.ndarray]) -> float:
        """Largest score difference between ``waveforms`` (16 kHz, of different lengths) alone and in one padded pass.

        A start-up self-check: the exactness of a padded pass rests on
        transformers internals, and a worker may run another transformers
        than the archive was built and tested with.
        """
        features = [self.features(waveform) for waveform in waveforms]
        together = self._one_pass(features)
        alone = np.concatenate([self._one_pass([f]) for f in features])
        return float(np.abs(together - alone).max())

    def _one_pass(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of ``features`` from one forward pass, padded when their lengths differ."""
        if self.runtime is not None:
            logits = self.runtime.logits(features)
            self.padded_passes += len({len(f) for f in features}) > 1
            return self._scores(logits)
        clips = [torch.from_numpy(np.ascontiguousarray(f)).to(self.device, self.dtype) for f in features]
        with precision.compute_context(self.profile, self.device):
            if len({len(clip) for clip in clips}) == 1:
                logits = forward.same_length_logits(self.model, torch.stack(clips))
            else:
                logits = forward.padded_logits(self.model, clips)
                self.padded_passes += 1
        return self._scores(logits)

    def _scores(self, logits: torch.Tensor) -> np.ndarray:
        logits = logits.float()
        scores = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return scores.cpu().numpy()


def features_of(feature_extractor, waveform: np.ndarray) -> np.ndarray:
    """One 16 kHz waveform through a checkpoint's feature extractor (its preprocessor_config.json)."""
    values = feature_extractor(waveform, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="np")
    return values["input_values"][0].astype(np.float32, copy=False)
