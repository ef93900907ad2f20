"""``ser-serve serve`` (the default engine): TorchServe on internal ports, the gateway on the public address.

The gateway answers the probes, the card's ``POST /predict`` and the page, and
forwards TorchServe's own API (``/predictions/...``, gRPC stays TorchServe's).
With ``--profile production`` TorchServe's tokens are off and the gateway
authenticates with the operator's token; on a laptop the token TorchServe
writes is passed through. SIGTERM/SIGINT drain before stopping; a dead
TorchServe is restarted (see supervisor.py).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ser_serve.engines.torchserve.archive import build_archive
from ser_serve.engines.torchserve.server import TorchServe, free_port, read_properties, with_free_ports, write_properties
from ser_serve.errors import InvalidCheckpoint, InvalidSettings
from ser_serve.gateway.app import Auth, Engine
from ser_serve.names import TIMELINE_MODEL
from ser_serve.supervisor import GatewaySettings, serve
from ser_serve.workspace import start_serving


def serve_torchserve(args, model_dir: Path) -> int:
    """Build both archives (the checkpoint validated first), then run TorchServe and the gateway until a signal."""
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG

    production = args.profile == "production"
    model_config = args.model_config or DEFAULT_MODEL_CONFIG
    try:  # build_archive validates the checkpoint, weights included, before writing anything
        archive = build_archive(model_dir, args.model_store, "ser", model_config, precision=args.precision)
        # The same checkpoint as the long-recording model, served next to it from the same store.
        build_archive(model_dir, args.model_store, TIMELINE_MODEL, model_config, timeline=True,
                      precision=args.precision)
    except (InvalidCheckpoint, InvalidSettings) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir, sample, sample_kind = start_serving(args, model_dir)
    print(f"built {archive}", flush=True)

    properties = read_properties(args.config)
    public = urlsplit(properties.get("inference_address", "http://127.0.0.1:8080"))
    host = args.host or ("0.0.0.0" if production else public.hostname)
    port = args.port or public.port or 8080
    if production:
        # TorchServe is internal to the pod: every listener on a free loopback port, its own tokens off
        # (the gateway authenticates), gRPC not exposed.
        properties = {**with_free_ports(properties), "disable_token_authorization": "true"}
    else:
        properties = {**properties, "inference_address": f"http://127.0.0.1:{free_port()}"}
    config = write_properties(properties, workdir / "torchserve.properties")
    torchserve = TorchServe(config, args.model_store, workdir, models="ser=ser.mar ser-timeline=ser-timeline.mar")
    engine = Engine(predictions_url=torchserve.inference_url, metrics_url=torchserve.metrics_url,
                    alive=torchserve.is_running, ready=torchserve.is_ready, engine_auth=torchserve.auth_headers)
    auth = Auth(token_file=args.token_file.resolve() if args.token_file else None, pass_through=not production)
    url = f"http://{host}:{port}"

    def announce() -> None:
        if production:  # no secrets in logs: the token is the operator's
            logging.getLogger("ser_serve.supervisor").info("ready", extra={"url": url, "model": "ser"})
            return
        token = torchserve.token("inference")
        print(f"\nserving models 'ser' and 'ser-timeline' at {url} (gRPC {torchserve.grpc_inference_target}).")
        print(f"Inference token: {token}   (management token and key file: {workdir / 'key_file.json'})")
        print(f"Try it with {sample_kind}:\n")
        print(f'  curl -H "Authorization: Bearer {token}" -T {sample} {url}/predictions/ser\n')
        print(f"Or open {url}/ in a browser (record or pick a file), or use the card's API:\n")
        print(f"  curl -F file=@{sample} {url}/predict\n")
        print("A long recording (a stereo call: one lane per channel) as an emotion timeline:\n")
        print(f'  curl -H "Authorization: Bearer {token}" -H "X-Channels: separate" -T call.wav {url}/predictions/ser-timeline\n')
        print("Press Ctrl-C (or send SIGTERM) to drain and stop.", flush=True)

    print(f"starting TorchServe (log: {torchserve.log_file}) ...", flush=True)
    return serve(torchserve, engine, auth, GatewaySettings(host, port, args.drain_seconds), on_ready=announce)
