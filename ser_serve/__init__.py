"""ser-serve: speech emotion recognition served on TorchServe.

The package is the pure core (no TorchServe import): audio decoding, model
loading, batching, postprocessing and the error table. ``handler/`` adapts it
to TorchServe.
"""

from .audio import AudioLimits
from .classifier import EmotionClassifier
from .errors import SerError

__all__ = ["AudioLimits", "EmotionClassifier", "SerError"]
__version__ = "0.1.0"
