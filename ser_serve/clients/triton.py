"""Calling the ``ser`` model on Triton: with Triton's own clients (tritonclient), or with plain HTTP.

The model takes one encoded audio file per request in the BYTES input
``AUDIO`` and answers ``RESULT`` (the JSON answer, as TorchServe's) and
``PROBABILITIES`` (FP32, in id2label order). A bad request fails alone with
the project's JSON error body as Triton's error message. ``ser-timeline``
takes a long recording the same way and answers ``RESULT`` (the timeline),
with the channel mode in the request parameter ``channels``.

Plain HTTP uses the KServe v2 protocol's binary-data extension: a JSON
header, then the file's bytes prefixed by their 4-byte little-endian length,
with the header's size in ``Inference-Header-Content-Length``
(:func:`v2_request`); the gateway and the curl example use this.
"""

from __future__ import annotations

import json
import struct

from ser_serve.names import MODEL, TIMELINE_MODEL

AUDIO, RESULT, PROBABILITIES = "AUDIO", "RESULT", "PROBABILITIES"
HEADER_LENGTH = "Inference-Header-Content-Length"


def v2_request(data: bytes, model: str = MODEL, parameters: dict | None = None,
               request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a v2 REST inference request carrying ``data`` as the binary AUDIO element.

    ``model`` decides the outputs asked for (``ser-timeline`` has RESULT only); ``parameters`` are the request's
    (``{"channels": "separate"}`` for a timeline); ``request_id`` is Triton's request id (its logs, the timeline's).
    """
    outputs = (RESULT,) if model == TIMELINE_MODEL else (RESULT, PROBABILITIES)
    header = {
        "inputs": [{"name": AUDIO, "shape": [1, 1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(data)}}],
        # Answers as JSON (not binary): readable with curl, and RESULT is JSON text anyway.
        "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in outputs],
    }
    if parameters:
        header["parameters"] = parameters
    if request_id:
        header["id"] = request_id
    encoded = json.dumps(header, separators=(",", ":")).encode()
    body = encoded + struct.pack("<I", len(data)) + data
    return body, {HEADER_LENGTH: str(len(encoded)), "Content-Type": "application/octet-stream"}


def v2_answer(body: bytes) -> tuple[dict, list[float]]:
    """(the JSON answer, the probabilities) from a successful v2 REST response made by :func:`v2_request`; a
    timeline has no probabilities (an empty list)."""
    outputs = {output["name"]: output for output in json.loads(body)["outputs"]}
    probabilities = outputs.get(PROBABILITIES, {"data": []})["data"]
    return json.loads(outputs[RESULT]["data"][0]), [float(p) for p in probabilities]


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
        result = self._infer(self.model, data, [RESULT, PROBABILITIES])
        answer = json.loads(result.as_numpy(RESULT).reshape(-1)[0])
        return answer, [float(p) for p in result.as_numpy(PROBABILITIES).reshape(-1)]

    def timeline(self, data: bytes, channels: str = "mix") -> dict:
        """The emotion timeline of a long recording from ``ser-timeline`` ("mix" or "separate" channels)."""
        result = self._infer(TIMELINE_MODEL, data, [RESULT], {"channels": channels})
        return json.loads(result.as_numpy(RESULT).reshape(-1)[0])

    def _infer(self, model: str, data: bytes, outputs: list[str], parameters: dict | None = None):
        import numpy as np
        from tritonclient.utils import InferenceServerException

        audio = self.module.InferInput(AUDIO, [1, 1], "BYTES")
        audio.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        requested = [self.module.InferRequestedOutput(name) for name in outputs]
        options = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            return self.client.infer(model, [audio], outputs=requested, parameters=parameters, **options)
        except InferenceServerException as exc:
            raise TritonError(str(exc.status()), error_body(exc.message())) from None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
