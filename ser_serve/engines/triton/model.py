"""Triton Python-backend adapter: read each request's AUDIO, call the runtime core, answer or fail it alone.

Triton's dynamic batcher hands ``execute`` several requests at once (up to
``max_batch_size``, see repository.py); each carries one encoded file in its
``AUDIO`` BYTES tensor. They are decoded and validated one by one, and the
valid ones share exact forward passes (ser_serve.worker), so a request's
answer never depends on its neighbours and a bad one fails alone: its
response carries Triton's per-request error, whose message is the same JSON
error body TorchServe answers (``{"error": {"code", "message"}}``) and whose
code gives the HTTP status / gRPC code (400 INVALID_ARG for client errors,
503 UNAVAILABLE for overload, 500 INTERNAL otherwise).

Outputs per request: ``RESULT`` (BYTES, the JSON answer) and
``PROBABILITIES`` (FP32, one score per label in ``id2label`` order, the
order of the repository's labels.txt).

The ``ser-timeline`` model (:class:`TimelinePythonModel`) takes a long
recording the same way, one per request, and answers ``RESULT`` only: the
timeline of ``EmotionClassifier.timeline``, its channel mode ("mix" or
"separate") from the request parameter ``channels``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml

from ser_serve.errors import InvalidParameter, SerError, UnsupportedMediaType, error_response
from ser_serve.settings import settings_from_model_yaml
from ser_serve.timeline import channel_mode
from ser_serve.worker import answer_uploads, decode_pool, start_classifier

# Names of the model's tensors (config.pbtxt is written from these in repository.py).
AUDIO, RESULT, PROBABILITIES = "AUDIO", "RESULT", "PROBABILITIES"
# The ser-timeline model's request parameter (KServe v2 "parameters") naming the channel mode.
CHANNELS_PARAMETER = "channels"
CHECKPOINT_SUBDIR = "checkpoint"
MODEL_CONFIG = "model-config.yaml"

logger = logging.getLogger(__name__)


def request_upload(audio) -> bytes | Exception:
    """The one encoded file a request's AUDIO tensor holds (a numpy object array), or the error to answer."""
    if audio is None:  # Triton itself refuses a request without a required input; kept for other callers
        return UnsupportedMediaType("Send the audio file as the BYTES input 'AUDIO'.")
    items = audio.reshape(-1)
    if len(items) != 1:
        return InvalidParameter(f"Send one audio file per request in 'AUDIO' (shape [1, 1]); got {len(items)}.")
    value = items[0]
    if isinstance(value, str):  # a JSON client that sent text: there is no audio in it
        return UnsupportedMediaType("'AUDIO' must hold the audio file's bytes (binary tensor data), not text.")
    return bytes(value)


def error_code(status: int) -> str:
    """The TritonError code name for an HTTP status of the project's error table."""
    if status in (503, 429):
        return "UNAVAILABLE"
    return "INVALID_ARG" if 400 <= status < 500 else "INTERNAL"


def error_message(exc: Exception) -> tuple[int, str]:
    """(HTTP status, message) of a failed request: the message is TorchServe's JSON error body."""
    status, _, body = error_response(exc)
    if status >= 500 and not isinstance(exc, SerError):
        logger.error("request failed", exc_info=exc)
    return status, json.dumps(body)


def probabilities(answer: dict, labels: list[str]) -> np.ndarray:
    """The answer's scores in label-id order, shape (1, labels): exactly the floats of its JSON."""
    scores = {result["label"]: result["score"] for result in answer["results"]}
    return np.array([[scores[label] for label in labels]], dtype=np.float32)


def result_tensor(answer: dict) -> np.ndarray:
    """The RESULT tensor of an answer: its JSON text, shape (1, 1)."""
    return np.array([[json.dumps(answer).encode()]], dtype=np.object_)


def request_channels(parameters: str | None) -> str:
    """The channel mode a request's parameters (Triton hands them over as JSON text) ask for; "mix" by default."""
    try:
        values = json.loads(parameters or "{}")
    except ValueError:
        values = {}
    value = values.get(CHANNELS_PARAMETER) if isinstance(values, dict) else None
    return channel_mode(None if value is None else str(value))


class TritonPythonModel:
    """The ``ser`` model of a repository built by ser_serve.engines.triton.repository."""

    timeline = False  # the ser-timeline model's subclass says True: its classifier gets the voice detector

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # provided by Triton's Python-backend stub

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.pb_utils = pb_utils
        model_dir = Path(args["model_repository"])
        source = model_dir / MODEL_CONFIG
        settings = settings_from_model_yaml(yaml.safe_load(source.read_text()), str(source))
        gpu_id = int(args["model_instance_device_id"]) if args.get("model_instance_kind") == "GPU" else None
        self.classifier = start_classifier(model_dir / CHECKPOINT_SUBDIR, settings, gpu_id, model_dir, self.timeline)
        self.decoder = decode_pool(self.classifier, settings, gpu_id)
        self.labels = self.classifier.labels
        self.name = args.get("model_name", "ser")
        self.metrics = _Metrics(pb_utils, self.name, self.classifier.model.precision_choice)

    def execute(self, requests):
        pb_utils = self.pb_utils
        uploads = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, AUDIO)
            uploads.append(request_upload(None if tensor is None else tensor.as_numpy()))
        answers = answer_uploads(self.classifier, uploads, self.metrics.decoded, self.decoder)
        self.metrics.batch(len(requests))
        return [self._response(answer) for answer in answers]

    def _response(self, answer):
        pb_utils = self.pb_utils
        if isinstance(answer, Exception):
            return self._error(answer)
        return pb_utils.InferenceResponse([
            pb_utils.Tensor(RESULT, result_tensor(answer)),
            pb_utils.Tensor(PROBABILITIES, probabilities(answer, self.labels)),
        ])

    def _error(self, exc: Exception):
        pb_utils = self.pb_utils
        status, message = error_message(exc)
        self.metrics.rejected(json.loads(message)["error"]["code"])
        code = getattr(pb_utils.TritonError, error_code(status))
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))

    def finalize(self) -> None:
        self.decoder.close()
        logger.info("%s model unloaded", self.name)


class TimelinePythonModel(TritonPythonModel):
    """The ``ser-timeline`` model: one long recording per request, analysed in windows the core batches itself."""

    timeline = True

    def execute(self, requests):
        pb_utils = self.pb_utils
        self.metrics.batch(len(requests))
        responses = []
        for request in requests:  # one at a time (max_batch_size 1); a bad one never fails another
            started = time.perf_counter()
            tensor = pb_utils.get_input_tensor_by_name(request, AUDIO)
            upload = request_upload(None if tensor is None else tensor.as_numpy())
            try:
                if isinstance(upload, Exception):
                    raise upload
                answer = self.classifier.timeline(upload, request_channels(request.parameters()),
                                                  request=request.request_id())
            except Exception as exc:
                responses.append(self._error(exc))
                continue
            # Decoding and analysis are one streamed pass for a timeline: the time covers both (as on TorchServe).
            self.metrics.decoded((time.perf_counter() - started) * 1000, answer["duration"])
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(RESULT, result_tensor(answer))]))
        return responses


class _Metrics:
    """The adapter's metrics as Triton custom metrics (exported next to Triton's own on the metrics port)."""

    def __init__(self, pb_utils, model: str, choice):
        family = pb_utils.MetricFamily
        labels = {"model": model}
        self._decode_ms = family("ser_decode_ms_total", "Milliseconds spent decoding uploads", family.COUNTER)
        self._decoded = family("ser_decoded_requests_total", "Uploads decoded", family.COUNTER)
        self._audio = family("ser_audio_seconds_total", "Seconds of audio decoded", family.COUNTER)
        self._rejected = family("ser_rejected_requests_total", "Requests answered with an error, by code",
                                family.COUNTER)
        self._batches = family("ser_batches_total", "execute() calls (batches formed by the dynamic batcher)",
                               family.COUNTER)
        self._batch_requests = family("ser_batch_requests_total", "Requests in those batches", family.COUNTER)
        running = family("ser_precision_running", "1 for the precision profile the worker runs", family.GAUGE)
        fallbacks = family("ser_precision_fallbacks", "1 when a reduced profile failed its guard and float32 runs",
                           family.GAUGE)
        agreement = family("ser_precision_agreement", "A profile's argmax agreement with float32 at start",
                           family.GAUGE)
        self._labels = labels
        self._counters = {name: metric.Metric(labels) for name, metric in (
            ("decode_ms", self._decode_ms), ("decoded", self._decoded), ("audio", self._audio),
            ("batches", self._batches), ("batch_requests", self._batch_requests))}
        self._by_code = {}
        running.Metric({**labels, "profile": choice.profile}).set(1)
        fallbacks.Metric({**labels, "requested": choice.requested}).set(1 if choice.fell_back else 0)
        for name, result in choice.guards.items():
            agreement.Metric({**labels, "profile": name}).set(result.agreement)
        self._keep = (running, fallbacks, agreement)  # metric families live as long as their metrics are used

    def decoded(self, milliseconds: float, seconds: float) -> None:
        self._counters["decode_ms"].increment(milliseconds)
        self._counters["decoded"].increment(1)
        self._counters["audio"].increment(seconds)

    def rejected(self, code: str) -> None:
        if code not in self._by_code:
            self._by_code[code] = self._rejected.Metric({**self._labels, "code": code})
        self._by_code[code].increment(1)

    def batch(self, requests: int) -> None:
        self._counters["batches"].increment(1)
        self._counters["batch_requests"].increment(requests)
