"""Locust suite for a ser-serve deployment: TorchServe and Triton users over REST and gRPC, load shapes, checked answers.

Run through `ser-serve loadtest` (or `make loadtest`), which starts a local
server when none is given, scrapes its metrics and writes the reports; or run
locust directly against your deployment:

    locust -f ser_tools/locustfile.py --headless --host http://127.0.0.1:8080 \
        --token "$TOKEN" --grpc-target 127.0.0.1:7070 --shape steady --shape-users 4 --shape-seconds 60 \
        RestUser GrpcUser

Name the user classes to run (RestUser, GrpcUser or both); users are shared among them.
For Triton (``ser-serve serve --engine triton``), TritonRestUser (KServe v2
REST with binary data, ``--host`` is Triton's HTTP address) and TritonGrpcUser
(Triton's own gRPC client, ``--triton-grpc-target``).

Every answer is checked against the response schema: a 200 whose body is
not a valid prediction counts as a failure.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

from locust import LoadTestShape, User, between, events, task
from locust.contrib.fasthttp import FastHttpUser

from ser_tools import load_options as defaults
from ser_tools.clipmix import ClipMix, load_or_make_clips
from ser_serve.response import schema_problems
from ser_serve.clients.auth import inference_token
from ser_serve.clients.triton import TritonClient, TritonError, v2_answer, v2_request

STATE = {"clips": [], "audio_seconds": 0.0, "statuses": {}, "requests": 0, "capacity": None, "lock": threading.Lock()}


@events.init_command_line_parser.add_listener
def add_options(parser):
    group = parser.add_argument_group("ser-serve")
    group.add_argument("--model", default="ser", help="model name on the server")
    group.add_argument("--token", default="", help="inference token (or --key-file)")
    group.add_argument("--key-file", default="", help="TorchServe key_file.json to read the inference token from")
    group.add_argument("--grpc-target", default="127.0.0.1:7070", help="host:port of the gRPC inference API")
    group.add_argument("--triton-grpc-target", default="127.0.0.1:8001", help="host:port of Triton's gRPC API")
    group.add_argument("--clip-count", type=int, default=defaults.CLIP_COUNT)
    group.add_argument("--clip-formats", default=defaults.CLIP_FORMATS,
                       help="format=share,... (shares are normalised)")
    group.add_argument("--clip-seconds", default=defaults.CLIP_SECONDS, help="min,mean,max clip duration")
    group.add_argument("--clip-cache", default="build/clips")
    group.add_argument("--shape", choices=["steady", "step", "spike"], default="steady")
    group.add_argument("--shape-users", type=int, default=defaults.SHAPE_USERS, help="steady users; spike baseline; step increment")
    group.add_argument("--shape-seconds", type=float, default=defaults.SHAPE_SECONDS, help="total duration of the shape")
    group.add_argument("--step-seconds", type=float, default=defaults.STEP_SECONDS, help="step: time at each user count")
    group.add_argument("--max-users", type=int, default=defaults.MAX_USERS, help="step: stop here; spike: peak users")
    group.add_argument("--max-requests", type=int, default=defaults.MAX_REQUESTS, help="stop after this many requests")
    group.add_argument("--slo-p95-ms", type=float, default=defaults.SLO_P95_MS, help="step: stop when p95 breaks it")
    group.add_argument("--stats-out", default="", help="write audio-seconds, statuses and capacity here (JSON)")


def clip_mix(options) -> ClipMix:
    return defaults.parse_clip_mix(options.clip_count, options.clip_formats, options.clip_seconds)


@events.test_start.add_listener
def load_clips(environment, **_):
    # Generated once and cached on disk: never encoded per request.
    STATE["clips"] = load_or_make_clips(clip_mix(environment.parsed_options), environment.parsed_options.clip_cache)


@events.test_stop.add_listener
def write_stats(environment, **_):
    path = environment.parsed_options.stats_out
    if path:
        Path(path).write_text(json.dumps({k: v for k, v in STATE.items() if k not in ("clips", "lock")}, indent=2))


def record(protocol: str, status, seconds: float) -> None:
    """Count the answer (the shape ends the run once --max-requests have come back)."""
    with STATE["lock"]:
        key = f"{protocol} {status}"
        STATE["statuses"][key] = STATE["statuses"].get(key, 0) + 1
        STATE["requests"] += 1
        if status == 200:
            STATE["audio_seconds"] += seconds


def check_http_answer(response, protocol: str, seconds: float, answer_of, unreadable: str) -> None:
    """Count an HTTP answer and mark it failed unless it is a 200 whose answer (``answer_of()``) passes the schema."""
    record(protocol, response.status_code, seconds)
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
        return
    try:
        problems = schema_problems(answer_of())
    except (ValueError, KeyError):
        problems = [unreadable]
    if problems:
        response.failure("; ".join(problems))


def report_grpc_answer(environment, protocol: str, name: str, seconds: float, call, errors, status_of) -> None:
    """Time ``call()`` (a JSON answer), schema-check it, count it and report it to locust as a gRPC request.

    An exception of type ``errors`` is a failed request with status ``status_of(error)``; others propagate.
    """
    started = time.perf_counter()
    exception, status, length = None, 200, 0
    try:
        body = call()
        length = len(json.dumps(body))
        problems = schema_problems(body)
        if problems:
            status, exception = "error-body", AssertionError("; ".join(problems))
    except errors as error:
        status, exception = status_of(error), error
    record(protocol, status, seconds)
    environment.events.request.fire(request_type="gRPC", name=name, response_time=(time.perf_counter() - started) * 1000,
                                    response_length=length, exception=exception, context={})


class ClipPicker:
    """Each user walks the shared clip list from its own offset."""

    offsets = itertools.count()

    def __init__(self):
        self.position = next(self.offsets) * 7

    def next(self):
        clips = STATE["clips"]
        self.position += 1
        return clips[self.position % len(clips)]


class RestUser(FastHttpUser):
    """POSTs a clip body to /predictions/<model> with the bearer token."""

    wait_time = between(0, 0.05)

    def on_start(self):
        options = self.environment.parsed_options
        self.picker = ClipPicker()
        self.headers = {"Authorization": f"Bearer {inference_token(options.token, options.key_file)}"}

    @task
    def predict(self):
        clip = self.picker.next()
        path = f"/predictions/{self.environment.parsed_options.model}"
        with self.client.post(path, data=clip.data, headers=self.headers, name=f"REST {clip.format}",
                              catch_response=True) as response:
            check_http_answer(response, "rest", clip.seconds, lambda: response.json(), "body is not JSON")


class GrpcUser(User):
    """Calls TorchServe's gRPC Predictions with stubs generated from the server's own proto."""

    wait_time = between(0, 0.05)

    def on_start(self):
        options = self.environment.parsed_options
        from ser_serve.clients.grpc import GrpcClient

        self.picker = ClipPicker()
        self.grpc = GrpcClient(options.grpc_target, inference_token(options.token, options.key_file))

    def on_stop(self):
        if hasattr(self, "grpc"):
            self.grpc.close()

    @task
    def predict(self):
        import grpc

        clip = self.picker.next()
        report_grpc_answer(self.environment, "grpc", f"gRPC {clip.format}", clip.seconds,
                           lambda: self.grpc.predict(self.environment.parsed_options.model, clip.data),
                           grpc.RpcError, lambda error: error.code().name)


class TritonRestUser(FastHttpUser):
    """POSTs a clip to Triton's /v2/models/<model>/infer (binary data extension); checks the RESULT answer."""

    wait_time = between(0, 0.05)

    def on_start(self):
        self.picker = ClipPicker()

    @task
    def predict(self):
        clip = self.picker.next()
        body, headers = v2_request(clip.data)
        path = f"/v2/models/{self.environment.parsed_options.model}/infer"
        with self.client.post(path, data=body, headers=headers, name=f"Triton REST {clip.format}",
                              catch_response=True) as response:
            check_http_answer(response, "triton-rest", clip.seconds, lambda: v2_answer(response.content)[0],
                              "body is not a v2 answer with RESULT")


class TritonGrpcUser(User):
    """Calls Triton's gRPC API with Triton's own client (tritonclient.grpc)."""

    wait_time = between(0, 0.05)

    def on_start(self):
        options = self.environment.parsed_options
        self.picker = ClipPicker()
        self.triton = TritonClient(options.triton_grpc_target, "grpc", model=options.model)

    def on_stop(self):
        if hasattr(self, "triton"):
            self.triton.close()

    @task
    def predict(self):
        clip = self.picker.next()
        # Transport failures too are counted, never fatal to the user.
        report_grpc_answer(self.environment, "triton-grpc", f"Triton gRPC {clip.format}", clip.seconds,
                           lambda: self.triton.predict(clip.data)[0], Exception,
                           lambda error: error.status if isinstance(error, TritonError) else type(error).__name__)


class ConfiguredShape(LoadTestShape):
    """Ends at --shape-seconds or after --max-requests answers, whichever comes first.
    steady: N users for the duration. step: add N users every --step-seconds until the p95 SLO
    breaks or --max-users is reached (the last good user count is the capacity). spike: N users,
    then --max-users for the middle fifth of the duration, then N again."""

    def tick(self):
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        if elapsed >= options.shape_seconds or STATE["requests"] >= options.max_requests:
            return None
        n = options.shape_users
        if options.shape == "steady":
            return n, n
        if options.shape == "spike":
            in_spike = 0.4 * options.shape_seconds <= elapsed < 0.6 * options.shape_seconds
            return (options.max_users, options.max_users) if in_spike else (n, n)
        users = min(options.max_users, n * (1 + int(elapsed // options.step_seconds)))
        p95 = self.runner.stats.total.get_current_response_time_percentile(0.95) or 0
        settled = elapsed % options.step_seconds > options.step_seconds / 2
        if settled and p95 > options.slo_p95_ms:
            STATE["capacity"] = max(n, users - n)  # the step before the one that broke the SLO
            return None
        STATE["capacity"] = users
        return users, users
