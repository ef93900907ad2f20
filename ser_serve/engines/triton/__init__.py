"""The Triton engine: Python-backend adapter (model.py), model repository builder, server lifecycle.

The repository carries the adapter and the runtime core, not the builder or
the launcher. Nothing here imports TorchServe."""
