"""``ser-serve serve --engine triton``: Triton for Triton's clients, the gateway for the card's API and the page.

Triton listens on 127.0.0.1 (HTTP 8000, gRPC 8001, metrics 8002 by default)
and is what ``tritonclient``, perf tools and KServe v2 clients call. The
gateway (127.0.0.1:8090 by default) forwards ``POST /predict`` and the page's
requests to it over the v2 protocol and answers the probes. SIGTERM/SIGINT
drain both (Triton finishes its in-flight requests); a model process that
dies is noticed within a second and Triton is restarted (see supervisor.py).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ser_serve.clients.triton import v2_request
from ser_serve.engines.triton.repository import build_repository
from ser_serve.engines.triton.server import TritonServer
from ser_serve.errors import InvalidCheckpoint, InvalidSettings
from ser_serve.gateway.app import Auth, Engine
from ser_serve.supervisor import GatewaySettings, serve
from ser_serve.workspace import start_serving

logger = logging.getLogger("ser_serve.supervisor")


def write_curl_body(audio: Path, destination: Path) -> tuple[Path, int]:
    """A v2 REST request body for ``audio`` that curl can send as it is; returns it and its JSON header's length."""
    body, headers = v2_request(audio.read_bytes())
    destination.write_bytes(body)
    return destination, int(headers["Inference-Header-Content-Length"])


def serve_triton(args, model_dir: Path) -> int:
    """Build the repository, then run Triton and the gateway until a signal; the command's exit code."""
    import torch

    workdir, sample, sample_kind = start_serving(args, model_dir)
    gpu = torch.cuda.is_available()  # instances on GPU 0 when there is one (ser.gpu settings then apply)
    try:
        repository = build_repository(model_dir, workdir / "triton-repository", args.model_config or
                                      _default_model_config(), precision=args.precision, gpu=gpu)
    except (InvalidCheckpoint, InvalidSettings) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"built {repository / 'ser'} and {repository / 'ser-timeline'} ({'GPU' if gpu else 'CPU'} instances)",
          flush=True)
    triton = TritonServer(repository, workdir / "triton", http_port=args.triton_http_port,
                          grpc_port=args.triton_grpc_port, metrics_port=args.triton_metrics_port,
                          host=args.triton_host)
    engine = Engine(predictions_url=triton.http_url, metrics_url=f"http://{triton.host}:{triton.metrics_port}",
                    alive=triton.is_running, ready=lambda: triton.is_ready() and not triton.broken(),
                    protocol="triton")
    production = args.profile == "production"
    # The gateway's auth as for TorchServe: production requires the operator's token (or --no-auth); on a laptop
    # the card's /predict is open. Triton itself has no authentication: it stays on --triton-host (loopback).
    auth = Auth(token_file=args.token_file.resolve() if args.token_file else None, pass_through=not production)
    host, port = args.host or ("0.0.0.0" if production else "127.0.0.1"), args.port or 8090
    gateway_url = f"http://{host}:{port}"
    request_body, header_length = write_curl_body(sample, workdir / "sample.v2")

    def announce() -> None:
        print(f"\nserving model 'ser' on Triton {triton.http_url} (gRPC {triton.grpc_target}, "
              f"metrics {triton.metrics_url}).")
        print(f"Try it with {sample_kind} over the KServe v2 REST protocol (binary data extension):\n")
        print(f"  curl -H 'Inference-Header-Content-Length: {header_length}' --data-binary @{request_body} "
              f"{triton.http_url}/v2/models/ser/infer\n")
        print("or with Triton's own client:\n")
        print(f"  {sys.executable} -c \"from ser_serve.clients.triton import TritonClient; "
              f"print(TritonClient('{triton.grpc_target}', 'grpc').predict(open('{sample}', 'rb').read())[0])\"\n")
        print(f"The card's API and a page to try it: {gateway_url}/  (curl -F file=@{sample} {gateway_url}/predict)")
        print(f"Long recordings: {triton.http_url}/v2/models/ser-timeline/infer, or {gateway_url}/timeline")
        print("Press Ctrl-C (or send SIGTERM) to drain and stop.", flush=True)

    print(f"starting Triton (log: {triton.log_file}) ...", flush=True)
    return serve(triton, engine, auth, GatewaySettings(host, port, args.drain_seconds), on_ready=announce)


def _default_model_config() -> Path:
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG

    return DEFAULT_MODEL_CONFIG
