"""A voice-generator adversary for training (domain-adversarial training, Ganin & Lempitsky 2015).

A small classifier tries to tell, from a clip's mean-pooled last hidden state (the pooling the emotion
classifier reads), which generator made the clip; its gradient reaches the network reversed, so the network
is pushed to make that summary say less about the voice and keep what the emotion labels need. The demo model
fails on an unheard engine by drifting to a few labels (147 of hts's 320 test clips "surprise"): its clip
summary carries the voice. Training only: nothing of it is saved with the checkpoint.
"""

from __future__ import annotations

import math

import torch


class _ReverseGradient(torch.autograd.Function):
    """Identity on the way forward; the gradient times ``-strength`` on the way back."""

    @staticmethod
    def forward(ctx, x, strength: float):
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    return _ReverseGradient.apply(x, strength)


def ramp(progress: float) -> float:
    """The usual schedule of the reversal's strength over training (0 at the start, near 1 by the middle):
    the adversary first learns what the voices look like while the network learns the labels."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class GeneratorAdversary(torch.nn.Module):
    def __init__(self, hidden_size: int, generators: int, width: int = 64):
        super().__init__()
        if generators < 2:
            raise ValueError(f"a generator adversary needs at least two generators in training, not {generators}")
        self.net = torch.nn.Sequential(torch.nn.Linear(hidden_size, width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, generators))

    def logits(self, hidden: torch.Tensor, strength: float) -> torch.Tensor:
        return self.net(reverse_gradient(hidden.float().mean(dim=1), strength))

    def loss(self, hidden: torch.Tensor, generators: torch.Tensor, strength: float) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the generator guess (which the adversary minimises and, reversed, the network
        maximises), and the guess's accuracy on the batch."""
        logits = self.logits(hidden, strength)
        return (torch.nn.functional.cross_entropy(logits, generators),
                float((logits.argmax(-1) == generators).float().mean()))
