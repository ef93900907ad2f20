"""The ``ser-serve`` command: make checkpoints, build archives, serve, predict."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ser_serve.names import TIMELINE_MODEL
from ser_serve.workspace import BUILD_DIR, MODEL_STORE, TINY_MODEL_DIR, WORKDIR, default_model_dir

# The server's settings shipped with the package (loopback, tokens on, management off).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "engines" / "torchserve" / "defaults" / "config.properties"
DELEGATED = {
    "loadtest": "run the locust suite headless and write reports (see loadtest --help)",
    "train": "fine-tune on CREMA-D-style parquet data (see train --help)",
    "evaluate": "accuracy, F1, confusion matrix in-process or against a server (see evaluate --help)",
    "bench": "model-only ceiling vs served stack vs naive baselines (see bench --help)",
    "soak": "bounded steady load with worker memory over time (see soak --help)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in DELEGATED:  # these commands parse their own arguments
        return _delegate(argv[0])(argv[1:])
    parser = argparse.ArgumentParser(prog="ser-serve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("checkpoint", help="write a random-init preset checkpoint (no download)")
    p.add_argument("--preset", choices=["tiny", "small", "base"], default="tiny")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_checkpoint)

    p = commands.add_parser("archive", help="build a .mar from a checkpoint directory")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=MODEL_STORE)
    p.add_argument("--name", default="ser")
    p.add_argument("--model-config", type=Path, default=None, help="model-config.yaml (default: the one shipped in ser_serve/defaults)")
    _precision_option(p)
    p.set_defaults(run=_archive)

    p = commands.add_parser("serve", help="build the archive and serve it: TorchServe (or Triton) behind a drain-aware gateway")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--engine", choices=["torchserve", "triton"], default="torchserve",
                   help="triton: the bundled Triton on --triton-*-port (KServe v2), the gateway on 127.0.0.1:8090")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config.properties")
    p.add_argument("--workdir", type=Path, default=WORKDIR, help="key file, logs, sample clip")
    p.add_argument("--model-store", type=Path, default=MODEL_STORE)
    p.add_argument("--model-config", type=Path, default=None)
    _precision_option(p)
    p.add_argument("--profile", choices=["laptop", "production"], default="laptop",
                   help="laptop: loopback, TorchServe's tokens, gRPC on; production: replicas behind a "
                        "load balancer (operator token or --no-auth, TorchServe internal, JSON logs)")
    p.add_argument("--host", help="gateway bind address (laptop: the config's inference address; production: 0.0.0.0)")
    p.add_argument("--port", type=int, help="gateway port (default: the config's inference port)")
    p.add_argument("--token-file", type=Path, default=os.environ.get("SER_SERVE_TOKEN_FILE") or None,
                   help="production: the bearer token clients must send, e.g. a mounted Secret (env SER_SERVE_TOKEN_FILE)")
    p.add_argument("--no-auth", action="store_true", help="production: authentication is done by the ingress or mesh")
    p.add_argument("--drain-seconds", type=float, default=20.0,
                   help="on SIGTERM/SIGINT, how long in-flight requests may take to finish")
    p.add_argument("--log-format", choices=["text", "json"], help="default: text (laptop), json (production)")
    p.add_argument("--triton-host", default="127.0.0.1",
                   help="Triton's bind address; Triton has no authentication: expose it only behind an ingress or mesh")
    p.add_argument("--triton-http-port", type=int, default=8000)
    p.add_argument("--triton-grpc-port", type=int, default=8001)
    p.add_argument("--triton-metrics-port", type=int, default=8002)
    p.set_defaults(run=_serve)

    p = commands.add_parser("gateway", help="the card's POST /predict and a page to try it, in front of a "
                                            "running server (--url) or the model in-process (--model-dir)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", type=Path, help="run the model in this process (no model server)")
    where.add_argument("--url", help="a running TorchServe's inference address, e.g. http://127.0.0.1:8080, "
                                     "or Triton's HTTP address with --engine triton, e.g. http://127.0.0.1:8000")
    p.add_argument("--engine", choices=["torchserve", "triton"], default="torchserve", help="what --url is")
    p.add_argument("--token", help="the server's inference token (default: from --key-file); never sent to browsers")
    p.add_argument("--key-file", type=Path, default=WORKDIR / "key_file.json")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="8090 by default: 8000-8002 are Triton's")
    p.add_argument("--max-in-flight-per-client", type=int, default=8)
    p.set_defaults(run=_gateway)

    p = commands.add_parser("predict", help="classify clips in-process (--model-dir) or via a server (--url)")
    p.add_argument("clips", nargs="+", type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--model-dir", type=Path)
    where.add_argument("--url", help="inference address, e.g. http://127.0.0.1:8080")
    where.add_argument("--grpc", metavar="HOST:PORT", help="gRPC inference address, e.g. 127.0.0.1:7070")
    p.add_argument("--model", default="ser", help="model name on the server")
    p.add_argument("--token", help="inference token; write --token=VALUE, tokens may start with '-' (default: from --key-file)")
    p.add_argument("--key-file", type=Path, default=WORKDIR / "key_file.json")
    p.set_defaults(run=_predict)

    p = commands.add_parser("timeline", help="an emotion timeline of a long recording, in-process or via a server")
    p.add_argument("recording", type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--model-dir", type=Path)
    where.add_argument("--url", help="inference address, e.g. http://127.0.0.1:8080")
    where.add_argument("--grpc", metavar="HOST:PORT", help="gRPC inference address, e.g. 127.0.0.1:7070")
    p.add_argument("--model", default=TIMELINE_MODEL, help="model name on the server")
    p.add_argument("--channels", choices=["mix", "separate"], default="mix",
                   help="mix: one lane, the mean of all channels (default); separate: one lane per channel (a stereo call)")
    p.add_argument("--plot", type=Path, help="also draw the timeline to this PNG (needs the 'bench' extra: matplotlib)")
    p.add_argument("--token", help="inference token; write --token=VALUE (default: from --key-file)")
    p.add_argument("--key-file", type=Path, default=WORKDIR / "key_file.json")
    p.set_defaults(run=_timeline)

    for name, help_text in DELEGATED.items():  # listed for --help; main() hands them their arguments
        commands.add_parser(name, help=help_text)

    p = commands.add_parser("synth", help="write synthetic emotional-speech parquet splits (train/validation/test)")
    p.add_argument("--out", type=Path, default=BUILD_DIR / "data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-label", type=int, nargs=3, metavar=("TRAIN", "VALIDATION", "TEST"), default=[400, 25, 50],
                   help="clips per label of the project's own synthetic voice")
    p.add_argument("--generators", nargs="+", default=["synth"],
                   help="voice generators: synth (the project's voice), espeak-ng, flite, festival, hts, accented (text-to-speech)")
    p.add_argument("--tts-per-label", type=int, nargs=3, metavar=("TRAIN", "VALIDATION", "TEST"),
                   help="clips per label of each text-to-speech generator (default: --per-label)")
    pitch = p.add_mutually_exclusive_group()
    pitch.add_argument("--tts-train-speaker-pitch", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                       help="the text-to-speech speakers' F0 multipliers in the training split, drawn uniformly between "
                            "the two (default 0.85 1.25, as validation and test; 0.71 1.41 is -6 to +6 semitones)")
    pitch.add_argument("--tts-train-speaker-semitones", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                       help="the same range given in semitones and drawn uniformly in semitones, so speakers spread "
                            "evenly above and below the voice (e.g. -9 9)")
    p.set_defaults(run=_synth)

    p = commands.add_parser("sample", help="write a synthetic 'happy' utterance to try the server with")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=_sample)

    args = parser.parse_args(argv)
    return args.run(args) or 0


def _precision_option(parser) -> None:
    from typing import get_args

    from ser_serve.settings import PrecisionProfile

    parser.add_argument("--precision", choices=get_args(PrecisionProfile), default=None,
                        help="the worker's precision profile, guarded against float32 at start "
                             "(default: the model-config's ser.precision.profile, shipped float32)")


def _delegate(command: str):
    """The ``main`` of a command that lives in the tools or training package."""
    try:
        if command == "loadtest":
            from ser_tools.loadtest import main
        elif command == "bench":
            from ser_tools.bench import main
        elif command == "soak":
            from ser_tools.soak import main
        elif command == "train":
            from ser_train.train import main
        else:
            from ser_train.evaluate import main
    except ImportError as exc:
        extra = "train" if command in ("train", "evaluate") else ("bench" if command == "bench" else "loadtest")
        raise SystemExit(f"error: `ser-serve {command}` needs the '{extra}' extra: pip install 'ser-serve[{extra}]' ({exc})")
    return main


def _synth(args) -> None:
    from ser_train.dataset import write_synthetic_dataset
    from ser_train.tts import SpeakerPitch

    counts = dict(zip(("train", "validation", "test"), args.per_label))
    tts_counts = dict(zip(("train", "validation", "test"), args.tts_per_label or args.per_label))
    pitch = {}
    if args.tts_train_speaker_pitch:
        pitch["tts_train_speaker_pitch"] = SpeakerPitch(*args.tts_train_speaker_pitch)
    elif args.tts_train_speaker_semitones:
        pitch["tts_train_speaker_pitch"] = SpeakerPitch.semitones(*args.tts_train_speaker_semitones)
    for split, path in write_synthetic_dataset(args.out, args.seed, counts, args.generators, tts_counts, **pitch).items():
        print(f"wrote {path} ({', '.join(args.generators)}; clips per label: synth {counts[split]}, "
              f"text-to-speech {tts_counts[split]})")


def _checkpoint(args) -> None:
    from ser_train.presets import make_preset_checkpoint

    make_preset_checkpoint(args.preset, args.out, seed=args.seed)
    print(f"wrote untrained {args.preset} checkpoint to {args.out}")


def _archive(args) -> int:
    from ser_serve.engines.torchserve.archive import build_archive
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG
    from ser_serve.errors import InvalidCheckpoint, InvalidSettings

    try:
        path = build_archive(args.model_dir, args.out, args.name, args.model_config or DEFAULT_MODEL_CONFIG,
                             precision=args.precision)
    except (InvalidCheckpoint, InvalidSettings) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _sample(args) -> None:
    from ser_serve.sample import write_synthetic_sample

    write_synthetic_sample(args.out)
    print(f"wrote {args.out} (a synthetic 'happy' utterance)")


def _predict(args) -> int:
    from ser_serve.clients.auth import inference_token

    status = 0
    if args.grpc:
        from ser_serve.clients.grpc import GrpcClient

        token = inference_token(args.token, args.key_file)
        with GrpcClient(args.grpc, token) as client:
            for clip in args.clips:
                answer = client.predict(args.model, clip.read_bytes())
                print(json.dumps({"clip": str(clip), **answer}))
                status = status or (1 if "error" in answer else 0)
        return status
    if args.url:
        import requests

        token = inference_token(args.token, args.key_file)
        for clip in args.clips:
            answer = requests.put(f"{args.url.rstrip('/')}/predictions/{args.model}", data=clip.read_bytes(),
                                  headers={"Authorization": f"Bearer {token}"}, timeout=120)
            print(json.dumps({"clip": str(clip), "status": answer.status_code, **answer.json()}))
            status = status or (0 if answer.ok else 1)
        return status
    from ser_serve import EmotionClassifier
    from ser_serve.errors import SerError, error_response

    classifier = EmotionClassifier.from_pretrained(args.model_dir or default_model_dir())
    for clip in args.clips:
        try:
            print(json.dumps({"clip": str(clip), **classifier.predict(clip)}))
        except SerError as exc:
            print(json.dumps({"clip": str(clip), **error_response(exc)[2]}))
            status = 1
    return status


def _timeline(args) -> int:
    """Print the timeline JSON of one recording; draw it with --plot."""
    if args.plot:
        try:  # checked first: an hour of analysis should not end in a missing plotting library
            from ser_tools.timeline import plot_timeline
        except ImportError as exc:
            raise SystemExit(f"error: --plot needs the 'bench' extra: pip install 'ser-serve[bench]' ({exc})")
    data = args.recording.read_bytes()
    if args.grpc or args.url:
        from ser_serve.clients.auth import inference_token

        token = inference_token(args.token, args.key_file)
        if args.grpc:
            from ser_serve.clients.grpc import GrpcClient

            with GrpcClient(args.grpc, token, timeout=3600) as client:
                answer = client.predict(args.model, data, channels=args.channels)
        else:
            import requests

            response = requests.put(f"{args.url.rstrip('/')}/predictions/{args.model}", data=data, timeout=3600,
                                    headers={"Authorization": f"Bearer {token}", "X-Channels": args.channels,
                                             "Content-Type": "application/octet-stream"})
            answer = response.json()
    else:
        from ser_serve import EmotionClassifier
        from ser_serve.errors import SerError, error_response

        classifier = EmotionClassifier.from_pretrained(args.model_dir or default_model_dir())
        try:
            answer = classifier.timeline(data, channels=args.channels)
        except SerError as exc:
            answer = error_response(exc)[2]
    print(json.dumps(answer))
    if "error" in answer:
        return 1
    if args.plot:
        plot_timeline(answer, args.plot, title=args.recording.name)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _serve(args) -> int:
    production = args.profile == "production"
    if production and not (args.token_file or args.no_auth):
        print("error: the production profile needs --token-file (or SER_SERVE_TOKEN_FILE) with the token clients "
              "must send, or --no-auth when an ingress or mesh authenticates them.", file=sys.stderr)
        return 2
    if args.token_file and not args.token_file.is_file():
        print(f"error: token file {args.token_file} does not exist", file=sys.stderr)
        return 2
    model_dir = (args.model_dir or default_model_dir()).resolve()
    if model_dir == TINY_MODEL_DIR.resolve() and not model_dir.exists():
        from ser_train.presets import make_preset_checkpoint

        make_preset_checkpoint("tiny", model_dir)
    if args.engine == "triton":
        from ser_serve.serve_triton import serve_triton

        return serve_triton(args, model_dir)
    from ser_serve.serve_torchserve import serve_torchserve

    return serve_torchserve(args, model_dir)


def _gateway(args) -> int:
    """The gateway alone: forwarding to a running server, or with the model in-process."""
    import requests
    import uvicorn

    from ser_serve.clients.auth import inference_token
    from ser_serve.gateway.app import Auth, DrainState, Engine, create_app, in_process_engine
    from ser_serve.logs import configure_logging

    configure_logging("text")
    if args.model_dir:
        from ser_serve import EmotionClassifier, allocator

        allocator.keep_freed_memory()  # a long-lived server, as a worker (ser.keep_freed_memory)
        engine = in_process_engine(EmotionClassifier.from_pretrained(args.model_dir))
    else:
        url = args.url.rstrip("/")
        key_file = args.key_file if args.key_file.is_file() else None
        headers = {"Authorization": f"Bearer {inference_token(args.token, key_file)}"} if (args.token or key_file) else {}

        probe = "/v2/health/ready" if args.engine == "triton" else "/ping"

        def ready() -> bool:
            try:
                return requests.get(f"{url}{probe}", headers=headers, timeout=2).status_code == 200
            except requests.RequestException:
                return False

        engine = Engine(predictions_url=url, metrics_url=None, alive=ready, ready=ready, engine_auth=lambda: headers,
                        protocol=args.engine)
    app = create_app(engine, Auth(), DrainState(), max_in_flight_per_client=args.max_in_flight_per_client)
    print(f"gateway at http://{args.host}:{args.port}/ (POST /predict, API docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
