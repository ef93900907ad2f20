"""One table from typed errors to HTTP statuses and JSON bodies.

Every failure a client can cause or meet is one of the exceptions below. The
handler, the CLI and the Python API all use :func:`error_response`, so a
client sees the same code and sentence whichever way it calls us.
"""

from __future__ import annotations

from http import HTTPStatus


class SerError(Exception):
    """Base class: a failure with an HTTP status and a stable machine-readable code."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"


class EmptyInput(SerError):
    status = HTTPStatus.BAD_REQUEST
    code = "empty_input"


class UndecodableAudio(SerError):
    status = HTTPStatus.BAD_REQUEST
    code = "undecodable_audio"


class InvalidAudio(SerError):
    """The file decodes but its content cannot be classified (NaN, Inf, bad header values)."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_audio"


class PayloadTooLarge(SerError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class AudioTooLong(SerError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "audio_too_long"


class TooManySegments(SerError):
    """A timeline would exceed ``ser.timeline.max_segments``."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_many_segments"


class InvalidParameter(SerError):
    """A request option (header or form field) with a value we do not know."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_parameter"


class NoSpeech(SerError):
    """The voice-activity detector found no speech: an emotion for silence would be made up."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "no_speech"


class UnsupportedMediaType(SerError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class Overloaded(SerError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"


class OutOfMemory(SerError):
    # 503, not 507 (a WebDAV storage status): clients, SDK retry policies and
    # load balancers treat 503 as retryable, and running out of memory for
    # one batch is a transient overload.
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "out_of_memory"


class NonFiniteScores(SerError):
    """The model answered NaN or infinity (e.g. a reduced-precision overflow): a server fault, not the client's."""

    code = "non_finite_scores"


class InvalidCheckpoint(SerError):
    """A model directory that cannot be served; raised at build or load time, not per request."""

    code = "invalid_checkpoint"


class InvalidSettings(SerError, ValueError):
    """A model-config.yaml ``ser:`` section that cannot be served; raised at build or load time."""

    code = "invalid_settings"


def status_of(code: str, default: int) -> int:
    """The HTTP status of an error ``code`` of this table (415 for unsupported_media_type...), else ``default``.

    Triton carries only a few error classes (400, 500, 503...): the gateway
    gives a Triton answer back the status TorchServe would have sent.
    """
    pending = list(SerError.__subclasses__())
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return int(kind.status)
        pending.extend(kind.__subclasses__())
    return default


def error_response(exc: BaseException) -> tuple[int, str, dict]:
    """Map any exception to ``(status, reason phrase, JSON body)``.

    Unknown exceptions become a 500 whose message does not leak internals.
    """
    if isinstance(exc, SerError):
        status, code, message = int(exc.status), exc.code, str(exc)
    else:
        status, code = 500, "internal_error"
        message = "The server failed to process this request; see the server log."
    phrase = HTTPStatus(status).phrase
    return status, phrase, {"error": {"code": code, "message": message}}
