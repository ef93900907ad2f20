"""Sets of logits and labels with a known miscalibration, for the temperature tests."""

import numpy as np
from scipy.special import softmax


def sampled(rng: np.random.Generator, n: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model that is ``temperature`` times too sure, and labels drawn from its true probabilities."""
    logits = rng.normal(0, 3, (n, 8))
    return logits, np.array([rng.choice(8, p=p) for p in softmax(logits / temperature, axis=-1)])
