"""Calling the ``ser`` model on Triton: with Triton's own clients (tritonclient), or with plain HTTP.

The model takes one encoded audio file per request in the BYTES input
``AUDIO`` and answers ``RESULT`` (the JSON answer, as TorchServe's) and
``PROBABILITIES`` (FP32, in id2label order). A bad request fails alone with
the project's JSON error body as Triton's error message.

Plain HTTP uses the KServe v2 protocol's binary-data extension: a JSON
header, then the file's bytes prefixed by their 4-byte little-endian length,
with the header's size in ``Inference-Header-Content-Length``
(:func:`v2_request`); the gateway and the curl example use this.
"""

from __future__ import annotations

import json
import struct

MODEL = "ser"
AUDIO, RESULT, PROBABILITIES = "AUDIO", "RESULT", "PROBABILITIES"
HEADER_LENGTH = "Inference-Header-Content-Length"


def v2_request(data: bytes) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a v2 REST inference request carrying ``data`` as the binary AUDIO element."""
    header = json.dumps({
        "inputs": [{"name": AUDIO, "shape": [1, 1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(data)}}],
        # Answers as JSON (not binary): readable with curl, and RESULT is JSON text anyway.
        "outputs": [{"name": RESULT, "parameters": {"binary_data": False}},
                    {"name": PROBABILITIES, "parameters": {"binary_data": False}}],
    }, separators=(",", ":")).encode()
    body = header + struct.pack("<I", len(data)) + data
    return body, {HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}


def v2_answer(body: bytes) -> tuple[dict, list[float]]:
    """(the JSON answer, the probabilities) from a successful v2 REST response made by :func:`v2_request`."""
    outputs = {output["name"]: output for output in json.loads(body)["outputs"]}
    return json.loads(outputs[RESULT]["data"][0]), [float(p) for p in outputs[PROBABILITIES]["data"]]


def error_body(message: str) -> dict:
    """The project's error body from a Triton error message; Triton's own errors (no JSON) get a generic code."""
    try:
        payload = json.loads(message)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload
    return {"error": {"code": "engine_error", "message": message}}


class TritonError(Exception):
    """A request Triton answered with an error; ``body`` is the project's error body."""

    def __init__(self, status: str, body: dict):
        super().__init__(f"{status}: {body['error']['code']}: {body['error']['message']}")
        self.status, self.body = status, body


class TritonClient:
    """The ser model through ``tritonclient`` over ``protocol`` "http" (``host:8000``) or "grpc" (``host:8001``)."""

    def __init__(self, target: str, protocol: str = "http", timeout: float = 120.0, model: str = MODEL):
        if protocol == "http":
            import tritonclient.http as module

            target = target.split("://", 1)[-1]
            self.client = module.InferenceServerClient(target, connection_timeout=timeout, network_timeout=timeout)
        elif protocol == "grpc":
            import tritonclient.grpc as module

            self.client = module.InferenceServerClient(target)
        else:
            raise ValueError(f"protocol must be http or grpc, not {protocol!r}")
        self.module, self.protocol, self.timeout, self.model = module, protocol, timeout, model

    def predict(self, data: bytes) -> tuple[dict, list[float]]:
        """(the JSON answer, the probabilities in id2label order); raises :class:`TritonError` for an error answer."""
        import numpy as np
        from tritonclient.utils import InferenceServerException

        audio = self.module.InferInput(AUDIO, [1, 1], "BYTES")
        audio.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        options = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            result = self.client.infer(self.model, [audio], **options)
        except InferenceServerException as exc:
            raise TritonError(str(exc.status()), error_body(exc.message())) from None
        answer = json.loads(result.as_numpy(RESULT).reshape(-1)[0])
        return answer, [float(p) for p in result.as_numpy(PROBABILITIES).reshape(-1)]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
