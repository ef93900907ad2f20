"""Checkpoint loading and exact, length-aware batched inference.

Why not simply pad a batch to its longest clip: wav2vec2-base normalises its
first conv layer over time (GroupNorm) and takes no attention mask, so
zero-padding changes every shorter clip's answer (by up to 0.04 in
probability on the base architecture). Instead the conv feature encoder runs
on each clip unpadded; its frames are then padded and the transformer runs
with an attention mask. That is exact: every later layer works per frame,
masks padded keys out of attention, or (the positional convolution) sees the
same zeros past a clip's end that it sees when the clip is alone; pooling
averages only real frames. See docs/batching.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ser_serve.audio import TARGET_SAMPLE_RATE
from ser_serve.batching import BatchBudget, plan_groups
from ser_serve.model.checkpoint import validate_checkpoint
from ser_serve.errors import OutOfMemory


class EmotionModel:
    """A loaded checkpoint: feature extractor, model and labels, ready for batches."""

    def __init__(
        self,
        checkpoint_dir: str | Path,
        device: str | torch.device | None = None,
        budget: BatchBudget = BatchBudget(),
        dtype: torch.dtype = torch.float32,
    ):
        from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

        validate_checkpoint(checkpoint_dir)
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
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(self.checkpoint_dir)
        if self.feature_extractor.sampling_rate != TARGET_SAMPLE_RATE:
            raise ValueError(
                f"checkpoint expects {self.feature_extractor.sampling_rate} Hz; this server feeds {TARGET_SAMPLE_RATE} Hz"
            )
        self.model = Wav2Vec2ForSequenceClassification.from_pretrained(self.checkpoint_dir)
        self.model.to(device=self.device, dtype=dtype).eval()
        self.id2label = {int(i): label for i, label in self.model.config.id2label.items()}
        config = self.model.config
        # The masked path re-assembles the classification forward from its
        # parts; configurations that add parts it does not cover (an adapter
        # that changes the frame rate, a weighted sum of layers) fall back to
        # grouping clips of identical length, which is exact too, only slower.
        self.masked_batching = not (getattr(config, "add_adapter", False) or config.use_weighted_layer_sum)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Normalise one 16 kHz waveform exactly as the checkpoint's preprocessor_config.json says."""
        values = self.feature_extractor(waveform, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="np")
        return values["input_values"][0].astype(np.float32, copy=False)

    def try_half_precision(self, tolerance: float, clips: Sequence[np.ndarray]) -> float:
        """Switch to float16 if it keeps every probability within ``tolerance`` of float32.

        Returns the largest difference measured on ``clips`` (raw 16 kHz
        waveforms); the model stays in float32 when it exceeds ``tolerance``.
        """
        features = [self.features(clip) for clip in clips]
        full = self.predict_proba(features)
        self.model.half()
        self.dtype = torch.float16
        half = self.predict_proba(features)
        difference = float(np.abs(full - half).max()) if np.isfinite(half).all() else float("inf")
        if difference > tolerance:
            self.model.float()
            self.dtype = torch.float32
        return difference

    @torch.inference_mode()
    def predict_proba(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities, shape (len(features), num_labels), for normalised inputs.

        Each clip's row equals what the clip gets alone (within float
        rounding), whatever else is in the batch.
        """
        probabilities = np.zeros((len(features), len(self.id2label)), dtype=np.float32)
        try:
            for group in plan_groups([len(f) for f in features], self.budget):
                clips = [torch.from_numpy(np.ascontiguousarray(features[i])) for i in group]
                logits = self._logits(clips)
                probabilities[group] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory("The server ran out of memory for this batch; retry later or send shorter audio.") from exc
        return probabilities

    def _logits(self, clips: list[torch.Tensor]) -> torch.Tensor:
        same_length = len({len(c) for c in clips}) == 1
        if same_length:  # no padding at all: the plain forward is exact
            batch = torch.stack(clips).to(self.device, self.dtype)
            return self.model(input_values=batch).logits
        if not self.masked_batching:
            return torch.cat([self.model(input_values=c[None].to(self.device, self.dtype)).logits for c in clips])
        return self._masked_logits(clips)

    def _masked_logits(self, clips: list[torch.Tensor]) -> torch.Tensor:
        wav2vec2, model = self.model.wav2vec2, self.model
        # 1. Conv feature encoder on each clip alone: its GroupNorm sees only the clip.
        per_clip = [wav2vec2.feature_extractor(c[None].to(self.device, self.dtype))[0].transpose(0, 1) for c in clips]
        frame_lengths = torch.tensor([len(f) for f in per_clip], device=self.device)
        frames = torch.nn.utils.rnn.pad_sequence(per_clip, batch_first=True)
        mask = torch.arange(frames.shape[1], device=self.device)[None, :] < frame_lengths[:, None]
        # 2. Transformer on padded frames; the encoder zeroes padded frames and masks them out of attention.
        hidden, _ = wav2vec2.feature_projection(frames)
        hidden = wav2vec2.encoder(hidden, attention_mask=mask).last_hidden_state
        # 3. Head: project, average over real frames only, classify.
        hidden = model.projector(hidden) * mask[..., None]
        pooled = hidden.sum(dim=1) / frame_lengths[:, None].to(hidden.dtype)
        return model.classifier(pooled)

