"""TorchServe adapter: read the request, call the runtime core (ser_serve.worker), map errors.

Two models of one store use it: ``ser`` (single clips, batched) and
``ser-timeline`` (long recordings, one per handler call: the timeline batches
its own windows), the latter through ``handle_timeline``.

Each request of a TorchServe batch is decoded and validated on its own; an
invalid one gets its own status and JSON error body (through
``context.set_response_status(code, phrase, idx)``) while the valid ones are
batched and answered with 200. ``handle()`` raises only for failures of the
whole worker, never because of one request.
"""

from __future__ import annotations

import json
import logging
import os
import time

from ser_serve.classifier import EmotionClassifier
from ser_serve.engines.torchserve.metrics import HandlerMetrics
from ser_serve.errors import UnsupportedMediaType, error_response
from ser_serve.settings import settings_from_model_yaml
from ser_serve.timeline import CHANNELS_FIELD, CHANNELS_HEADER, channel_mode
from ser_serve.worker import answer_uploads, decode_pool, start_classifier

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoint"
JSON = "application/json"
# Keys under which TorchServe hands over a body: "data"/"body" for a raw body,
# the form field name for multipart uploads ("file" by convention).
BODY_KEYS = ("data", "body", "file", "audio")


def request_payload(request: dict) -> bytes | bytearray:
    """The uploaded audio bytes of one TorchServe request, or a typed error."""
    for key in BODY_KEYS:
        if request.get(key) is not None:
            value = request[key]
            break
    else:
        value = next((v for v in request.values() if isinstance(v, (bytes, bytearray))), None)
    if isinstance(value, (bytes, bytearray)):
        return value  # not copied here: decoding makes the one copy it needs
    # TorchServe turns text/* and application/json bodies into str/dict before we see them.
    raise UnsupportedMediaType(
        "Send the audio file itself as the request body (e.g. curl -T clip.wav) or as a "
        "multipart form field named 'file' (curl -F file=@clip.wav), not text or JSON."
    )


class SERHandler:
    """Speech emotion recognition handler for TorchServe."""

    def __init__(self, timeline: bool = False):
        self.timeline = timeline
        self.classifier: EmotionClassifier | None = None
        self.metrics: HandlerMetrics | None = None
        self.decoder = None
        self.initialized = False

    def initialize(self, context) -> None:
        properties = context.system_properties
        model_dir = properties.get("model_dir")
        # Validated again here (the archive build already did): a hand-edited
        # archive must fail with a message naming the key, not a KeyError.
        settings = settings_from_model_yaml(getattr(context, "model_yaml_config", None), "the archive's model-config.yaml")
        gpu_id = properties.get("gpu_id")
        gpu_id = None if gpu_id is None else int(gpu_id)
        self.classifier = start_classifier(os.path.join(model_dir, CHECKPOINT_SUBDIR), settings, gpu_id, model_dir,
                                           self.timeline)
        self.decoder = decode_pool(self.classifier, settings, gpu_id)
        self.metrics = HandlerMetrics(context)
        self.metrics.record_precision(self.classifier.model.precision_choice)
        self.initialized = True

    def describe(self) -> str:
        """The model description TorchServe's management API shows for ``GET /models/<name>?customized=true``."""
        model = self.classifier.model
        return json.dumps({"labels": model.labels, "device": str(model.device), "precision": model.precision_choice.as_dict()})

    def handle(self, data: list[dict], context) -> list[str]:
        if self.timeline:
            return self.handle_timelines(data, context)
        self.metrics.record_batch(len(data))
        uploads = []
        for request in data:
            try:
                uploads.append(request_payload(request))
            except Exception as exc:
                uploads.append(exc)
        answers = answer_uploads(self.classifier, uploads, self.metrics.record_decoded, self.decoder)
        responses = []
        for idx, answer in enumerate(answers):
            if isinstance(answer, Exception):
                responses.append(self._error(context, idx, answer))
            else:
                context.set_response_content_type(idx, JSON)
                responses.append(json.dumps(answer))
        return responses

    def handle_timelines(self, data: list[dict], context) -> list[str]:
        """One timeline per request; a long recording is analysed in windows batched by the core."""
        responses = []
        for idx, request in enumerate(data):
            started = time.perf_counter()
            try:
                mode = channel_mode(request.get(CHANNELS_FIELD) or _header(context, idx, CHANNELS_HEADER))
                answer = self.classifier.timeline(request_payload(request), mode, request=_request_id(context, idx))
            except Exception as exc:  # one bad upload must not fail its neighbours
                responses.append(self._error(context, idx, exc))
                continue
            # Decoding and analysis are one streamed pass for a timeline: the time covers both.
            self.metrics.record_decoded((time.perf_counter() - started) * 1000, answer["duration"])
            context.set_response_content_type(idx, JSON)
            responses.append(json.dumps(answer))
        return responses

    def _error(self, context, idx: int, exc: Exception) -> str:
        status, phrase, body = error_response(exc)
        self.metrics.record_rejected(body["error"]["code"])
        if status >= 500:
            logger.error("request %s failed", _request_id(context, idx), exc_info=exc)
        context.set_response_status(status, phrase, idx)
        context.set_response_content_type(idx, JSON)
        return json.dumps(body)


def _header(context, idx: int, name: str) -> str | None:
    """A request header by case-insensitive name (TorchServe hands them over as the client spelt them)."""
    try:
        headers = context.get_all_request_header(idx) or {}
    except Exception:
        return None
    return next((value for key, value in headers.items() if str(key).lower() == name.lower()), None)


def _request_id(context, idx: int) -> str:
    """The gateway's X-Request-ID of the idx-th request, else TorchServe's own id, else the index."""
    try:
        return str(_header(context, idx, "X-Request-ID") or context.get_request_id(idx))
    except Exception:
        return f"#{idx}"


_service = SERHandler()
_timeline_service = SERHandler(timeline=True)


def _entry(service: SERHandler, data, context):
    if not service.initialized:
        service.initialize(context)
    if data is None:
        return None
    if _is_describe(context):
        return [service.describe()]
    return service.handle(data, context)


def handle(data, context):
    """Module-level entry point TorchServe calls for initialisation and inference (model ``ser``)."""
    return _entry(_service, data, context)


def handle_timeline(data, context):
    """The entry point of the timeline archive (model ``ser-timeline``)."""
    return _entry(_timeline_service, data, context)


def _is_describe(context) -> bool:
    """TorchServe's management API asks for the model description with a ``describe: True`` request header."""
    try:
        return context.get_request_header(0, "describe") == "True"
    except Exception:
        return False
