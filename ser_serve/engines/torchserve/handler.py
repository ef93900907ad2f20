"""TorchServe adapter: read the request, call the runtime core, map errors.

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

import torch

from ser_serve.audio import TARGET_SAMPLE_RATE
from ser_serve.classifier import EmotionClassifier
from ser_serve.engines.torchserve.metrics import HandlerMetrics
from ser_serve.errors import UnsupportedMediaType, error_response
from ser_serve.model import precision
from ser_serve.model.calibration import calibration_clips, operator_clips
from ser_serve.settings import settings_from_model_yaml
from ser_serve.timeline import CHANNELS_FIELD, CHANNELS_HEADER, channel_mode

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoint"
JSON = "application/json"
# Keys under which TorchServe hands over a body: "data"/"body" for a raw body,
# the form field name for multipart uploads ("file" by convention).
BODY_KEYS = ("data", "body", "file", "audio")
# What "a clip's answer does not depend on its neighbours" means in float32 (measured: 1e-7).
EXACT_TOLERANCE = 1e-5


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
        self.initialized = False

    def initialize(self, context) -> None:
        properties = context.system_properties
        model_dir = properties.get("model_dir")
        # Validated again here (the archive build already did): a hand-edited
        # archive must fail with a message naming the key, not a KeyError.
        settings = settings_from_model_yaml(getattr(context, "model_yaml_config", None), "the archive's model-config.yaml")
        on_gpu = torch.cuda.is_available() and properties.get("gpu_id") is not None
        device = f"cuda:{properties['gpu_id']}" if on_gpu else "cpu"
        budget = settings.gpu.batching if on_gpu else settings.batching
        if not on_gpu and settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.classifier = EmotionClassifier.from_pretrained(
            os.path.join(model_dir, CHECKPOINT_SUBDIR), device=device, limits=settings.limits, budget=budget,
            vad=settings.vad, timeline=settings.timeline,
        )
        self.metrics = HandlerMetrics(context)
        self._choose_precision(settings, model_dir)
        self._check_exact_batching(model_dir)
        if on_gpu and settings.gpu.fp16:
            tolerance = settings.gpu.fp16_tolerance
            difference = self.classifier.model.try_half_precision(tolerance, calibration_clips())
            logger.info("fp16 max probability difference %.2e (tolerance %.0e): running in %s",
                        difference, tolerance, self.classifier.model.dtype)
        logger.info(
            "ser handler ready (%s): labels=%s device=%s dtype=%s precision=%s threads=%d settings=%s",
            "timeline" if self.timeline else "clips", self.classifier.labels, device, self.classifier.model.dtype,
            self.classifier.model.profile, torch.get_num_threads(), settings,
        )
        self.initialized = True

    def _choose_precision(self, settings, model_dir: str) -> None:
        """Run the configured profile only if it passes the guard against float32; log and export the figures."""
        wanted = settings.precision
        extra = []
        if wanted.profile != precision.FLOAT32 and wanted.calibration_dir:
            extra = operator_clips(os.path.join(model_dir, wanted.calibration_dir), settings.limits)
        choice = self.classifier.model.use_precision(wanted, extra)
        for result in choice.guards.values():
            logger.log(logging.INFO if result.passed else logging.WARNING,
                       "precision guard %s vs float32 on %d calibration clips: argmax agreement %.3f (min %.3f), "
                       "max probability change %.2e (max %.2e): %s%s", result.profile, result.clips, result.agreement,
                       wanted.guard.min_agreement, result.max_change, wanted.guard.max_probability_change,
                       "passed" if result.passed else "FAILED", f" ({result.error})" if result.error else "")
        if choice.seconds:
            logger.info("precision auto timings (median s per pass over the calibration clips): %s",
                        {name: round(seconds, 4) for name, seconds in choice.seconds.items()})
        if choice.fell_back:
            logger.error("precision %r failed its accuracy guard: FALLING BACK TO float32", choice.requested)
        logger.info("precision: requested %s, running %s", choice.requested, choice.profile)
        self.metrics.record_precision(choice)

    def describe(self) -> str:
        """The model description TorchServe's management API shows for ``GET /models/<name>?customized=true``."""
        model = self.classifier.model
        return json.dumps({"labels": model.labels, "device": str(model.device), "precision": model.precision_choice.as_dict()})

    def _check_exact_batching(self, model_dir: str) -> None:
        """Measure a padded pass against clips alone; if it is not exact here, batch identical lengths only.

        The archive pins transformers, but TorchServe does not install the
        pins (install_py_dep_per_model=false): log what runs against them.
        """
        model = self.classifier.model
        difference = model.batching_difference(calibration_clips()[:2])
        pinned = _pinned_versions(os.path.join(model_dir, "requirements.txt"))
        installed = {name: _installed_version(name) for name in ("torch", "transformers")}
        drift = {name: (pinned[name], version) for name, version in installed.items() if pinned.get(name, version) != version}
        logger.info("padded batch vs alone (%s): %.1e; installed %s; differs from the archive's pins: %s",
                    model.profile, difference, installed, drift or "nothing")
        # What "a clip's answer does not depend on its neighbours" means in the profile that runs.
        tolerance = precision.PROFILES[model.profile].batch_tolerance
        if difference > tolerance:
            logger.error("a padded forward pass changed scores by %.1e (> %.0e) with these packages: only clips of "
                         "identical length will share a forward pass", difference, tolerance)
            model.budget = model.budget.model_copy(update={"max_padding_ratio": 1.0})

    def handle(self, data: list[dict], context) -> list[str]:
        if self.timeline:
            return self.handle_timelines(data, context)
        responses: list[str | None] = [None] * len(data)
        prepared, prepared_indices = [], []
        self.metrics.record_batch(len(data))
        for idx, request in enumerate(data):
            started = time.perf_counter()
            try:
                features = self.classifier.prepare(request_payload(request))
            except Exception as exc:  # one bad upload must not fail its neighbours
                responses[idx] = self._error(context, idx, exc)
                continue
            self.metrics.record_decoded((time.perf_counter() - started) * 1000, len(features) / TARGET_SAMPLE_RATE)
            prepared.append(features)
            prepared_indices.append(idx)
        if prepared:
            try:
                results = self.classifier.answer_each(prepared)
            except Exception as exc:
                logger.exception("inference failed for a batch of %d", len(prepared))
                results = [exc] * len(prepared)
            for idx, result in zip(prepared_indices, results):
                if isinstance(result, Exception):
                    responses[idx] = self._error(context, idx, result)
                else:
                    context.set_response_content_type(idx, JSON)
                    responses[idx] = json.dumps(result)
        logger.info("batch of %d: %d valid; padded forward passes so far: %d",
                    len(data), len(prepared), self.classifier.model.padded_passes)
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


def _pinned_versions(requirements: str) -> dict[str, str]:
    """``name==version`` lines of the archive's requirements.txt ({} when there is none)."""
    try:
        lines = open(requirements).read().split()
    except OSError:
        return {}
    return dict(line.split("==", 1) for line in lines if "==" in line)


def _installed_version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


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
