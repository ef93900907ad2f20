"""The HTTP front of `ser-serve serve`: a drain-aware, engine-neutral gateway in front of the model server.

It owns what TorchServe's frontend cannot do: a graceful drain on SIGTERM,
health and readiness endpoints a probe can call without a token, an
operator-provided token (or auth delegated to an ingress), one JSON error
schema for every failure, request ids and structured logs.
"""
