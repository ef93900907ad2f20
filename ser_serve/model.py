"""Checkpoint loading and exact batched inference."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import TARGET_SAMPLE_RATE
from .checkpoint import validate_checkpoint
from .errors import OutOfMemory


class EmotionModel:
    """A loaded checkpoint: feature extractor, model and labels, ready for batches."""

    def __init__(self, checkpoint_dir: str | Path, device: str | torch.device | None = None):
        from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

        validate_checkpoint(checkpoint_dir)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(self.checkpoint_dir)
        if self.feature_extractor.sampling_rate != TARGET_SAMPLE_RATE:
            raise ValueError(
                f"checkpoint expects {self.feature_extractor.sampling_rate} Hz; this server feeds {TARGET_SAMPLE_RATE} Hz"
            )
        self.model = Wav2Vec2ForSequenceClassification.from_pretrained(self.checkpoint_dir)
        self.model.to(self.device).eval()
        self.id2label = {int(i): label for i, label in self.model.config.id2label.items()}

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Normalise one 16 kHz waveform exactly as the checkpoint's preprocessor_config.json says."""
        values = self.feature_extractor(waveform, sampling_rate=TARGET_SAMPLE_RATE, return_tensors="np")
        return values["input_values"][0].astype(np.float32, copy=False)

    @torch.inference_mode()
    def predict_proba(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities, shape (len(features), num_labels), for normalised inputs.

        Clips are batched only with clips of identical length. wav2vec2-base
        normalises its first conv layer over time and takes no attention mask,
        so zero-padding would change a clip's answer; equal lengths need no
        padding, and the batch result equals each clip's result alone.
        """
        probabilities = np.zeros((len(features), len(self.id2label)), dtype=np.float32)
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, clip in enumerate(features):
            by_length[len(clip)].append(index)
        try:
            for indices in by_length.values():
                batch = torch.from_numpy(np.stack([features[i] for i in indices])).to(self.device)
                logits = self.model(input_values=batch).logits
                probabilities[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory("The server ran out of memory for this batch; retry later or send shorter audio.") from exc
        return probabilities
