"""`ser-serve loadtest` / `make loadtest`: run the locust suite headless and write the reports.

Against ``--url`` (your deployment) or, when none is given, a TorchServe
(or with ``--engine triton`` a Triton) started here on free loopback ports. Writes locust's CSV and HTML reports,
``summary.json`` and ``summary.md`` (requests/s, audio-seconds/s, p50/p95/p99,
errors by status, the server's own metrics scraped during the run) and exits
non-zero when an SLO is broken.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from ser_serve.clients.auth import inference_token
from ser_serve.engines.torchserve.server import TorchServe, start_on_free_ports
from ser_serve.workspace import BUILD_DIR, TINY_MODEL_DIR, default_model_dir
from ser_tools import load_options as defaults
from ser_tools.promscrape import MetricsRecorder

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
LOCUST_OPTIONS = ("model", "shape", "shape_users", "shape_seconds", "step_seconds", "max_users",
                  "max_requests", "slo_p95_ms", "clip_count", "clip_formats", "clip_seconds", "clip_cache")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve loadtest", description=__doc__)
    target = parser.add_argument_group("target (default: start a local TorchServe)")
    target.add_argument("--url", help="inference address of a running server, e.g. http://127.0.0.1:8080")
    target.add_argument("--grpc-target", help="host:port of its gRPC inference API")
    target.add_argument("--metrics-url", help="its metrics address, e.g. http://127.0.0.1:8082")
    target.add_argument("--token", help="inference token; write --token=VALUE")
    target.add_argument("--key-file", help="TorchServe key_file.json to read the token from")
    target.add_argument("--model-dir", type=Path, default=default_model_dir(),
                        help="checkpoint for the local server")
    target.add_argument("--model", default="ser")
    target.add_argument("--engine", choices=["torchserve", "triton"], default="torchserve",
                        help="triton: Triton's users (v2 REST, tritonclient gRPC); --url is Triton's HTTP address and "
                             "--grpc-target its gRPC one")
    load = parser.add_argument_group("load")
    load.add_argument("--protocol", choices=["rest", "grpc", "both"], default="both")
    load.add_argument("--shape", choices=["steady", "step", "spike"], default="steady")
    load.add_argument("--users", dest="shape_users", type=int, default=defaults.SHAPE_USERS,
                      help="steady users; step increment; spike baseline")
    load.add_argument("--seconds", dest="shape_seconds", type=float, default=defaults.SHAPE_SECONDS, help="duration of the shape")
    load.add_argument("--step-seconds", type=float, default=defaults.STEP_SECONDS)
    load.add_argument("--max-users", type=int, default=defaults.MAX_USERS, help="step ceiling; spike peak")
    load.add_argument("--max-requests", type=int, default=defaults.MAX_REQUESTS)
    load.add_argument("--clip-count", type=int, default=defaults.CLIP_COUNT)
    load.add_argument("--clip-formats", default=defaults.CLIP_FORMATS)
    load.add_argument("--clip-seconds", default=defaults.CLIP_SECONDS, help="min,mean,max")
    load.add_argument("--clip-cache", default=str(BUILD_DIR / "clips"))
    slo = parser.add_argument_group("SLOs (the run fails when one is broken)")
    slo.add_argument("--slo-p95-ms", type=float, default=defaults.SLO_P95_MS)
    slo.add_argument("--slo-p99-ms", type=float, default=10_000)
    slo.add_argument("--slo-error-rate", type=float, default=0.0, help="largest accepted failure share")
    slo.add_argument("--slo-min-rps", type=float, default=0.0, help="smallest accepted requests/s")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "loadtest")
    return parser.parse_args(argv)


def run(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if args.url:
            default_grpc = "127.0.0.1:8001" if args.engine == "triton" else "127.0.0.1:7070"
            url, grpc_target, metrics_url = args.url, args.grpc_target or default_grpc, args.metrics_url
            token = inference_token(args.token, args.key_file) if args.engine == "torchserve" else ""
        elif args.engine == "triton":
            triton = stack.enter_context(start_local_triton(args.model_dir, stack))
            url, grpc_target, metrics_url, token = triton.http_url, triton.grpc_target, None, ""
        else:
            server = stack.enter_context(start_local_server(args.model_dir, args.model, stack))
            url, grpc_target, metrics_url, token = (server.inference_url, server.grpc_inference_target,
                                                    server.metrics_url, server.token())
        print(f"load test: {args.shape} shape, {args.protocol}, against {url} (gRPC {grpc_target})", flush=True)
        # The recorder reads TorchServe's metric names; Triton's stay on its own metrics port.
        recorder = (stack.enter_context(MetricsRecorder(metrics_url, args.model))
                    if metrics_url and args.engine == "torchserve" else None)
        started = time.time()
        code = run_locust(args, url, grpc_target, token)
        duration = time.time() - started
    summary = summarise(args, duration, recorder, code)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(markdown(summary))
    print((args.out / "summary.md").read_text())
    return 1 if summary["slo"]["broken"] or code not in (0, 1) else 0


def start_local_server(model_dir: Path, model: str, stack: ExitStack) -> TorchServe:
    """A TorchServe for ``model_dir`` on free loopback ports, ready, and stopped when ``stack`` closes."""
    from ser_train.presets import make_preset_checkpoint

    if not (model_dir / "config.json").exists() and model_dir.resolve() == TINY_MODEL_DIR.resolve():
        make_preset_checkpoint("tiny", model_dir)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ser-loadtest-")))
    print("starting a local TorchServe ...", flush=True)
    server = start_on_free_ports(model_dir, tmp, model)
    try:
        server.wait_ready(timeout=300, model=model)
    except Exception:
        server.stop()
        raise
    return server


def start_local_triton(model_dir: Path, stack: ExitStack):
    """A Triton for ``model_dir`` on free loopback ports, ready, and stopped when ``stack`` closes."""
    from ser_serve.engines.triton.server import start_on_free_ports as start_triton

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ser-loadtest-triton-")))
    print("starting a local Triton ...", flush=True)
    triton = start_triton(model_dir, tmp)
    try:
        triton.wait_ready(timeout=300)
    except Exception:
        triton.stop()
        raise
    return triton


def run_locust(args, url: str, grpc_target: str, token: str) -> int:
    """Run locust headless; its exit code is 1 when any request failed."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
               "--csv", str(args.out / "locust"), "--html", str(args.out / "locust.html"), "--only-summary",
               "--run-time", f"{int(args.shape_seconds + 30)}s", "--stop-timeout", "10",
               f"--grpc-target={grpc_target}", f"--triton-grpc-target={grpc_target}", f"--token={token}",
               f"--stats-out={args.out / 'ser_stats.json'}"]
    for option in LOCUST_OPTIONS:
        command.append(f"--{option.replace('_', '-')}={getattr(args, option)}")
    users = {"rest": ["RestUser"], "grpc": ["GrpcUser"], "both": ["RestUser", "GrpcUser"]}[args.protocol]
    command += [f"Triton{user}" for user in users] if args.engine == "triton" else users
    return subprocess.run(command, timeout=args.shape_seconds + 120).returncode


def read_locust_stats(path: Path) -> dict:
    """Rows of locust's <prefix>_stats.csv keyed by (type, name)."""
    with open(path, newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def summarise(args, duration: float, recorder: MetricsRecorder | None, locust_code: int) -> dict:
    rows = read_locust_stats(args.out / "locust_stats.csv")
    total = rows[("", "Aggregated")]
    ser_stats = json.loads((args.out / "ser_stats.json").read_text())
    requests_, failures = int(total["Request Count"]), int(total["Failure Count"])

    def percentile(row, p):
        value = row.get(p)
        return float(value) if value not in (None, "", "N/A") else None

    by_protocol = {}
    for (kind, name), row in rows.items():
        if name == "Aggregated":
            continue
        protocol = "gRPC" if kind == "gRPC" else "REST"
        entry = by_protocol.setdefault(protocol, {"requests": 0, "failures": 0})
        entry["requests"] += int(row["Request Count"])
        entry["failures"] += int(row["Failure Count"])
    summary = {
        "target": {"url": args.url or "local", "engine": args.engine, "model": args.model, "protocol": args.protocol,
                   "shape": args.shape},
        "duration_s": round(duration, 2),
        "requests": requests_,
        "failures": failures,
        "error_rate": failures / requests_ if requests_ else 1.0,
        "requests_per_s": float(total["Requests/s"]),
        # Audio per answered request times locust's request rate (the wall
        # time around locust also counts its start-up).
        "audio_s_per_s": ser_stats["audio_seconds"] / max(ser_stats["requests"], 1) * float(total["Requests/s"]),
        "p50_ms": percentile(total, "50%"),
        "p95_ms": percentile(total, "95%"),
        "p99_ms": percentile(total, "99%"),
        "by_status": ser_stats["statuses"],
        "by_protocol": by_protocol,
        "capacity_users": ser_stats.get("capacity") if args.shape == "step" else None,
        "server": recorder.summary() if recorder else None,
        "locust_exit_code": locust_code,
    }
    thresholds = {"p95_ms": args.slo_p95_ms, "p99_ms": args.slo_p99_ms, "error_rate": args.slo_error_rate,
                  "min_requests_per_s": args.slo_min_rps}
    broken = []
    if requests_ == 0:
        broken.append("no request was answered")
    for key in ("p95_ms", "p99_ms", "error_rate"):
        if summary[key] is not None and summary[key] > thresholds[key]:
            broken.append(f"{key} {summary[key]:.4g} > {thresholds[key]:g}")
    if summary["requests_per_s"] < args.slo_min_rps:
        broken.append(f"requests_per_s {summary['requests_per_s']:.3g} < {args.slo_min_rps:g}")
    summary["slo"] = {"thresholds": thresholds, "broken": broken}
    return summary


def markdown(s: dict) -> str:
    def ms(value):
        return f"{value:.0f}" if value is not None else "n/a"

    lines = [
        f"# Load test: {s['target']['shape']} shape, {s['target']['protocol']}, model {s['target']['model']}",
        "",
        "| requests | failures | error rate | req/s | audio-s/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| {s['requests']} | {s['failures']} | {s['error_rate']:.2%} | {s['requests_per_s']:.2f} | "
        f"{s['audio_s_per_s']:.2f} | {ms(s['p50_ms'])} | {ms(s['p95_ms'])} | {ms(s['p99_ms'])} |",
        "",
        "Answers by protocol and status: " + ", ".join(f"{k}: {v}" for k, v in sorted(s["by_status"].items())),
    ]
    if s["capacity_users"] is not None:
        lines.append(f"\nCapacity (step shape): {s['capacity_users']} users before the p95 SLO broke.")
    server = s.get("server") or {}
    if server.get("inference_requests") is not None:
        lines += ["", "Server's view (TorchServe metrics, deltas over the run): "
                  f"{server['inference_requests']:.0f} requests, mean queue {ms(server['mean_queue_ms'])} ms, "
                  f"mean inference {ms(server['mean_inference_ms'])} ms, mean decode "
                  f"{server['mean_decode_ms']:.1f} ms, mean requests per batch "
                  f"{server['mean_batch_requests'] or 0:.2f}, {server['audio_seconds']:.1f} s of audio decoded."
                  if server.get("mean_decode_ms") is not None else
                  f"{server['inference_requests']:.0f} requests."]
    slo = s["slo"]
    lines += ["", "SLOs: " + ("all met" if not slo["broken"] else "BROKEN: " + "; ".join(slo["broken"]))
              + " (" + ", ".join(f"{k} {v:g}" for k, v in slo["thresholds"].items()) + ")"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
