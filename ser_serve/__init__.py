"""ser-serve: speech emotion recognition served on TorchServe.

This package is the runtime: what a serving worker imports. The request path
is ``audio`` (bytes -> 16 kHz mono) -> ``batching`` (exact, length-aware
groups) -> ``model`` (checkpoint, forward) -> ``response`` (JSON), with
``errors`` mapping failures to statuses and ``settings`` validating the
``ser:`` section of model-config.yaml. ``classifier`` is the in-process
Python API over the same path. ``engines/`` adapts it to a model server,
``clients/`` calls a server; tools and training live in ``ser_tools`` and
``ser_train`` and are never imported from here.

Attributes are imported lazily so that ``import ser_serve.response`` (clients,
load tests) does not pay for torch.
"""

from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["AudioLimits", "EmotionClassifier", "SerError"]

_LAZY = {
    "AudioLimits": "ser_serve.settings",
    "EmotionClassifier": "ser_serve.classifier",
    "SerError": "ser_serve.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ser_serve' has no attribute {name!r}")
