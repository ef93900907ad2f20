"""Mixup of training batches (`ser-serve train --mixup ALPHA`): each clip mixed with another clip of its batch.

A row becomes ``w * x + (1 - w) * x[partner]``, with ``w`` drawn per row from Beta(alpha, alpha) and folded to
``max(w, 1 - w)`` so that a row's own clip always dominates (its measure targets and its crop stay the row's
own), and the loss of the row becomes the same mixture of the two clips' losses. Mixup is known to leave a
classifier less over-confident on inputs unlike its training data (Thulasidasan et al., 2019): here, voices it
has not heard. Batches mix generators (they are length-bucketed from a shuffled order), so a mixture is often two
voices at once: something between the voices the model knows.

The mixture is normalised again (zero mean, unit variance per row) when the checkpoint's feature extractor
normalises, so that the network still sees inputs shaped like those it is served.
"""

from __future__ import annotations

import numpy as np
import torch


class BatchMix:
    """One batch's mixture: ``partner[i]`` is the clip row i is mixed with, ``weight[i]`` row i's own share."""

    def __init__(self, batch_size: int, rng: np.random.Generator, alpha: float):
        self.partner = rng.permutation(batch_size)
        weight = rng.beta(alpha, alpha, size=batch_size)
        self.weight = np.maximum(weight, 1 - weight).astype(np.float32)

    def inputs(self, inputs: torch.Tensor, normalise: bool) -> torch.Tensor:
        w = torch.from_numpy(self.weight)[:, None]
        mixed = w * inputs + (1 - w) * inputs[torch.from_numpy(self.partner)]
        if normalise:  # as Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm
            mixed = (mixed - mixed.mean(1, keepdim=True)) / torch.sqrt(mixed.var(1, keepdim=True, unbiased=False) + 1e-7)
        return mixed

    def targets(self, values: np.ndarray) -> np.ndarray:
        """Per-row targets (measures, probabilities; first axis = rows) mixed as the inputs are."""
        w = self.weight.reshape((-1,) + (1,) * (values.ndim - 1))
        return w * values + (1 - w) * values[self.partner]

    def loss(self, row_loss) -> torch.Tensor:
        """Mean over rows of w * loss(own clip) + (1 - w) * loss(partner); ``row_loss(rows)`` gives one loss per row
        for the clips ``rows`` (indices into the batch) as the labels of rows 0..n-1."""
        own = row_loss(np.arange(len(self.partner)))
        other = row_loss(self.partner)
        w = torch.from_numpy(self.weight).to(own.device)
        return (w * own + (1 - w) * other).mean()
