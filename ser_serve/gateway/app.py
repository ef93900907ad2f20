"""The gateway's FastAPI app: forwards predictions to the engine, answers probes, maps errors.

The engine is reached over HTTP (``Engine``): the app imports no engine, so
TorchServe (its ``/predictions/{model}`` API) and Triton (the KServe v2
protocol, ``/v2/models/{model}/infer``) stand behind the same front.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ser_serve.clients.triton import error_body, v2_answer, v2_request
from ser_serve.errors import status_of
from ser_serve.names import TIMELINE_MODEL
from ser_serve.timeline import CHANNELS_FIELD, CHANNELS_HEADER

logger = logging.getLogger("ser_serve.gateway")

# Request ids we pass on as they are; anything else is replaced, so a client
# cannot inject text into log lines.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Content types that mean "not an audio file": curl --data-binary defaults to
# the first, and TorchServe's frontend answers it with a Java exception.
FORM_OR_TEXT = ("application/x-www-form-urlencoded", "text/", "application/json")
# Models that take long recordings: a larger body limit (the engine's
# max_request_size) and a longer wait for the answer than single clips.
LONG_RECORDING_MODELS = {TIMELINE_MODEL}
LONG_BODY_BYTES = 136 * 1024 * 1024
LONG_TIMEOUT_S = 3600.0
# The timeline's channel mode, passed to the engine as this header whether the
# client sent it as a header or as a form field of the same name.
SEND_AUDIO = ("Send the audio file itself as the body with a binary content type (curl -T clip.wav, or "
              "curl --data-binary @clip.wav -H 'Content-Type: application/octet-stream'), or one multipart "
              "form field (curl -F file=@clip.wav).")


@dataclass
class Engine:
    """How the gateway reaches the model server behind it (over HTTP), or the model in-process."""

    predictions_url: str | None             # base URL; /predictions/{model} is appended (None: in-process)
    metrics_url: str | None                 # Prometheus text endpoint, passed through as /metrics
    alive: Callable[[], bool]               # the engine's processes are running
    ready: Callable[[], bool]               # a worker is loaded and answers
    # The engine's own token, sent for clients the gateway has already let in
    # (the page and /predict never see it).
    engine_auth: Callable[[], dict] = field(default=lambda: {})
    local: Callable[[bytes], dict] | None = None  # in-process prediction (the card's small deployments)
    local_timeline: Callable[[bytes, str], dict] | None = None  # in-process timeline: (audio, channel mode)
    card_model: str = "ser"                 # the model POST /predict answers with
    timeline_model: str = TIMELINE_MODEL    # the model POST /timeline answers with
    # "torchserve": PUT {predictions_url}/predictions/{model}; "triton": the v2 protocol at predictions_url
    # (/v2/models/{model}/infer), clips and timelines alike.
    protocol: str = "torchserve"


def in_process_engine(classifier) -> Engine:
    """An Engine that runs ``classifier`` (an EmotionClassifier) in the gateway's own process."""
    return Engine(predictions_url=None, metrics_url=None, alive=lambda: True, ready=lambda: True,
                  local=classifier.predict,
                  local_timeline=lambda body, channels: classifier.timeline(body, channels=channels))


@dataclass
class Auth:
    """Who may call /predictions: holders of the operator's token, or anyone (auth delegated or pass-through)."""

    token_file: Path | None = None          # the token the gateway requires (e.g. a mounted Kubernetes Secret)
    pass_through: bool = False              # forward the client's Authorization header to the engine instead
    _cached: tuple[float, str] | None = field(default=None, init=False, repr=False)

    def token(self) -> str | None:
        """The current token, re-read when the file changes (Secrets are rotated in place)."""
        if self.token_file is None:
            return None
        mtime = self.token_file.stat().st_mtime
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, self.token_file.read_text().strip())
        return self._cached[1]

    def allows(self, header: str | None) -> bool:
        expected = self.token()
        if expected is None:
            return True
        offered = (header or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(offered.encode(), expected.encode())


@dataclass
class DrainState:
    """Set when the gateway stops taking work; readiness reports it."""

    draining: bool = False


def error(status: int, code: str, message: str, request_id: str, headers: dict | None = None) -> JSONResponse:
    """A response in the project's error schema, carrying the request id."""
    return JSONResponse({"error": {"code": code, "message": message, "request_id": request_id}}, status_code=status,
                        headers={"X-Request-ID": request_id, **(headers or {})})


def engine_error(status: int, body: bytes, request_id: str) -> JSONResponse:
    """An engine's error answer in the project's schema with the request id.

    The handler's own errors already have the schema and keep their code and
    message; the engine frontend's (full queue, bad token, unknown model,
    oversize body) are mapped to it.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        payload["error"]["request_id"] = request_id
        return JSONResponse(payload, status_code=status, headers={"X-Request-ID": request_id})
    kind = payload.get("type", "") if isinstance(payload, dict) else ""
    if status == 400 and "InvalidKey" in kind:
        return error(401, "unauthorized", "The bearer token is missing or wrong.", request_id,
                     {"WWW-Authenticate": "Bearer"})
    if status == 503:
        return error(503, "overloaded", "The server is busy; retry after a short wait.", request_id,
                     {"Retry-After": "1"})
    if status == 413:
        return error(413, "payload_too_large", "The upload is larger than the server accepts.", request_id)
    if status == 404:
        return error(404, "not_found", "No such model on this server.", request_id)
    return error(status if status >= 400 else 502, "engine_error",
                 "The model server failed to answer this request; see the server log.", request_id)


class LabelScore(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    """The model card's answer: every label, highest score first, and the top one."""

    results: list[LabelScore]
    dominant: LabelScore


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


AUDIO_BODY = {"schema": {"type": "string", "format": "binary"}}
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": AUDIO_BODY, "audio/*": AUDIO_BODY}}}
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 413, 415, 422, 429, 500, 503)}
STATIC_DIR = Path(__file__).resolve().parent / "static"


class ClientLimiter:
    """At most ``limit`` requests in flight per client address: one client cannot take every worker slot."""

    def __init__(self, limit: int):
        self.limit, self.in_flight = limit, {}

    def enter(self, client: str) -> bool:
        if self.in_flight.get(client, 0) >= self.limit:
            return False
        self.in_flight[client] = self.in_flight.get(client, 0) + 1
        return True

    def leave(self, client: str) -> None:
        self.in_flight[client] -= 1
        if not self.in_flight[client]:
            del self.in_flight[client]


def create_app(engine: Engine, auth: Auth, drain: DrainState, max_body_bytes: int = 12 * 1024 * 1024,
               timeout_s: float = 120.0, max_in_flight_per_client: int = 8) -> FastAPI:
    """The gateway app; ``max_body_bytes`` matches the engine's own request limit."""
    client = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=64))
    limiter = ClientLimiter(max_in_flight_per_client)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await client.aclose()

    app = FastAPI(title="ser-serve gateway", version="0.2.0", lifespan=lifespan,
                  description="Speech emotion recognition: the model card's POST /predict, TorchServe's "
                              "/predictions/{model}, probes and a page to try it (GET /).")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.middleware("http")
    async def request_id_and_log(request: Request, call_next):
        offered = request.headers.get("x-request-id", "")
        request.state.request_id = offered if REQUEST_ID_PATTERN.match(offered) else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        if request.url.path not in ("/healthz", "/readyz", "/metrics"):
            logger.info("request", extra={
                "request_id": request.state.request_id, "method": request.method, "path": request.url.path,
                "status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 1)})
        return response

    # Probes are plain functions: FastAPI runs them in its thread pool, so the
    # engine checks (blocking HTTP calls) never stall the event loop.
    @app.get("/healthz")
    def healthz():
        alive = engine.alive()
        return JSONResponse({"status": "alive" if alive else "engine_down"}, status_code=200 if alive else 503)

    @app.get("/readyz")
    def readyz():
        if drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        ready = engine.ready()
        return JSONResponse({"status": "ready" if ready else "loading"}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics():
        if engine.metrics_url is None:
            return PlainTextResponse("", status_code=404)
        answer = await client.get(f"{engine.metrics_url}/metrics")
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "text/plain"))

    async def classify(request: Request, model: str, accept_any_body: bool) -> Response:
        """Auth, per-client limit, body checks, then the engine; every failure in the error schema."""
        request_id = request.state.request_id
        offered = request.headers.get("authorization")
        if not auth.allows(offered):
            return error(401, "unauthorized", "The bearer token is missing or wrong.", request_id,
                         {"WWW-Authenticate": "Bearer"})
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith(FORM_OR_TEXT) and not accept_any_body:
            return error(415, "unsupported_media_type",
                         f"The body was sent as {content_type.split(';')[0]}, not as audio. {SEND_AUDIO}", request_id)
        who = request.client.host if request.client else "unknown"
        if not limiter.enter(who):
            return error(429, "too_many_requests", f"This client already has {limiter.limit} requests in flight; "
                         "wait for an answer before sending more.", request_id, {"Retry-After": "1"})
        try:
            long_recording = model in LONG_RECORDING_MODELS
            limit = max(max_body_bytes, LONG_BODY_BYTES) if long_recording else max_body_bytes
            body = await read_bounded(request, limit)
            if body is None:
                return error(413, "payload_too_large", f"The upload is larger than {limit:,} bytes.", request_id)
            channels = request.headers.get(CHANNELS_HEADER)
            if content_type.startswith("multipart/form-data"):
                files, fields = await multipart_parts(request, body)
                if len(files) != 1:
                    return error(400, "one_file_per_request",
                                 f"The form carries {len(files)} files; send exactly one per request. {SEND_AUDIO}",
                                 request_id)
                body = files[0]
                channels = fields.get(CHANNELS_FIELD, channels)
            if engine.local is not None:
                if long_recording:
                    return await classify_in_process(lambda: engine.local_timeline(body, channels or "mix"), request_id)
                return await classify_in_process(lambda: engine.local(body), request_id)
            headers = {"Content-Type": "application/octet-stream", "X-Request-ID": request_id}
            if channels is not None:
                headers[CHANNELS_HEADER] = channels
            if auth.pass_through and not accept_any_body:
                if offered:  # TorchServe's own API: TorchServe checks its own token
                    headers["Authorization"] = offered
            else:  # the gateway has let the client in (its token, or the card's open /predict on a laptop)
                headers.update(engine.engine_auth())
            if engine.protocol == "triton":
                return await classify_on_triton(model, body, headers, request_id, channels)
            try:
                answer = await client.put(f"{engine.predictions_url}/predictions/{model}", content=body, headers=headers,
                                          timeout=engine_timeout(long_recording))
            except httpx.TransportError:
                return error(503, "unavailable", "The model server is not reachable; retry later.", request_id,
                             {"Retry-After": "1"})
            if answer.status_code >= 400:
                return engine_error(answer.status_code, answer.content, request_id)
            return Response(answer.content, status_code=answer.status_code,
                            media_type=answer.headers.get("content-type", "application/json"))
        finally:
            limiter.leave(who)

    def engine_timeout(long_recording: bool) -> float:
        """How long to wait for the engine: a timeline of a long recording takes minutes."""
        return max(timeout_s, LONG_TIMEOUT_S) if long_recording else timeout_s

    async def classify_on_triton(model: str, audio: bytes, headers: dict, request_id: str,
                                 channels: str | None) -> Response:
        """One v2 inference request; the answer is the model's RESULT, an error keeps the model's code.

        A timeline's channel mode travels as the request parameter ``channels`` (Triton passes no headers on)."""
        long_recording = model in LONG_RECORDING_MODELS
        body, v2_headers = v2_request(audio, model, {"channels": channels} if long_recording and channels else None,
                                      request_id)
        try:
            answer = await client.post(f"{engine.predictions_url}/v2/models/{model}/infer", content=body,
                                       headers={**headers, **v2_headers},
                                       timeout=engine_timeout(long_recording))
        except httpx.TransportError:
            return error(503, "unavailable", "The model server is not reachable; retry later.", request_id,
                         {"Retry-After": "1"})
        if answer.status_code == 200:
            return JSONResponse(v2_answer(answer.content)[0], headers={"X-Request-ID": request_id})
        try:
            message = answer.json().get("error", "")
        except ValueError:
            message = answer.text
        payload = error_body(message)
        if payload["error"]["code"] == "engine_error":  # Triton's own error (queue full, unknown model...)
            return engine_error(answer.status_code, b"", request_id)
        payload["error"]["request_id"] = request_id
        # The status TorchServe sends for this code (Triton has no 413 or 415, say).
        status = status_of(payload["error"]["code"], answer.status_code)
        return JSONResponse(payload, status_code=status, headers={"X-Request-ID": request_id})

    async def classify_in_process(work: Callable[[], dict], request_id: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        from ser_serve.errors import error_response

        try:
            return JSONResponse(await run_in_threadpool(work))
        except Exception as exc:  # the same error table as the served handler
            status, _, payload = error_response(exc)
            if status >= 500:
                logger.error("prediction failed", extra={"request_id": request_id}, exc_info=exc)
            payload["error"]["request_id"] = request_id
            return JSONResponse(payload, status_code=status, headers={"X-Request-ID": request_id})

    @app.api_route("/predictions/{model}", methods=["PUT", "POST"], include_in_schema=False)
    async def predictions(model: str, request: Request):
        """TorchServe's inference API: a raw audio body or one multipart file; form and text bodies are refused."""
        return await classify(request, model, accept_any_body=False)

    @app.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=PREDICT_BODY,
              summary="Classify one recording (the model card's API)")
    async def predict(request: Request):
        """A multipart form with one file (any field name; the card's clients send `file`) or the audio as the
        raw body, whatever content type the client put on it (`curl --data-binary @clip.wav` works)."""
        return await classify(request, engine.card_model, accept_any_body=True)

    @app.post("/timeline", responses=ERRORS, openapi_extra=PREDICT_BODY,
              summary="An emotion timeline of a long recording (one lane per channel with `X-Channels: separate`)")
    async def timeline(request: Request):
        """Like /predict, for recordings up to hours: `{"duration", "channels", "segments": [...], "summary"}`.
        The channel mode comes from the `X-Channels` header or a `channels` form field (`mix` or `separate`)."""
        return await classify(request, engine.timeline_model, accept_any_body=True)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html")

    return app


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def multipart_parts(request: Request, body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """The file parts and the text fields of a multipart body (python-multipart, through Starlette's form parser)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as StarletteRequest

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    form = await StarletteRequest(request.scope, replay).form()
    files = [await value.read() for _, value in form.multi_items() if isinstance(value, UploadFile)]
    fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    return files, fields
