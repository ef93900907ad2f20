"""The locust suite, run for real (headless locust, bounded to a few seconds) against real servers."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ser_serve.model.calibration import voice
from ser_tools import loadtest
from ser_serve.cli import main as cli_main
from ser_tools.encode import encode

pytestmark = pytest.mark.integration


def loadtest_args(server, tmp_path, *extra):
    return ["--url", server.inference_url, "--grpc-target", server.grpc_inference_target,
            "--metrics-url", server.metrics_url, f"--token={server.token()}", "--out", str(tmp_path / "out"),
            "--clip-count", "8", "--clip-cache", str(tmp_path / "clips"), *extra]


def test_rest_and_grpc_smoke_run_has_zero_failures_and_full_reports(server, tmp_path):
    code = loadtest.main(loadtest_args(server, tmp_path, "--protocol", "both", "--users", "2", "--seconds", "4",
                                       "--max-requests", "200"))
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, (out / "summary.md").read_text()
    assert summary["failures"] == 0 and summary["requests"] > 0
    assert summary["by_protocol"]["REST"]["requests"] > 0 and summary["by_protocol"]["gRPC"]["requests"] > 0
    assert set(summary["by_status"]) == {"rest 200", "grpc 200"}
    assert summary["audio_s_per_s"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
    # The server's own view, scraped from its Prometheus endpoint during the run.
    assert summary["server"]["inference_requests"] >= summary["requests"] * 0.5
    assert summary["server"]["mean_decode_ms"] > 0
    for report in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html", "summary.md"):
        assert (out / report).stat().st_size > 0, report
    assert summary["slo"]["broken"] == []


def test_triton_users_over_rest_and_grpc_against_a_local_triton_have_zero_failures(tiny_checkpoint, tmp_path):
    # No --url: the load test starts its own Triton for the checkpoint and stops it afterwards.
    code = loadtest.main(["--engine", "triton", "--model-dir", str(tiny_checkpoint), "--protocol", "both",
                          "--users", "2", "--seconds", "4", "--max-requests", "120", "--out", str(tmp_path / "out"),
                          "--clip-count", "8", "--clip-cache", str(tmp_path / "clips")])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0, (tmp_path / "out" / "summary.md").read_text()
    assert summary["target"]["engine"] == "triton" and summary["failures"] == 0
    assert set(summary["by_status"]) == {"triton-rest 200", "triton-grpc 200"}
    assert summary["by_protocol"]["REST"]["requests"] > 0 and summary["by_protocol"]["gRPC"]["requests"] > 0


def test_broken_slo_makes_the_run_fail(server, tmp_path):
    code = loadtest.main(loadtest_args(server, tmp_path, "--protocol", "rest", "--users", "1", "--seconds", "3",
                                       "--slo-p95-ms", "0.001"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 1
    assert summary["failures"] == 0 and summary["slo"]["broken"][0].startswith("p95_ms")


def test_step_shape_stops_at_the_slo_and_reports_capacity(server, tmp_path):
    loadtest.main(loadtest_args(server, tmp_path, "--protocol", "rest", "--shape", "step", "--users", "1",
                                "--step-seconds", "2", "--max-users", "50", "--seconds", "20", "--slo-p95-ms", "1"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["capacity_users"] == 1  # the first step already breaks a 1 ms p95
    assert summary["duration_s"] < 20


class WrongSchemaServer(BaseHTTPRequestHandler):
    """Answers every prediction with 200 and a body that is not a prediction."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"results": [], "dominant": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_200_with_a_wrong_body_counts_as_a_failure(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), WrongSchemaServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        code = loadtest.main(["--url", f"http://127.0.0.1:{httpd.server_port}", "--token=x", "--protocol", "rest",
                              "--users", "1", "--seconds", "2", "--max-requests", "20", "--out", str(tmp_path / "out"),
                              "--clip-count", "4", "--clip-cache", str(tmp_path / "clips")])
    finally:
        httpd.shutdown()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 1
    assert summary["requests"] > 0 and summary["failures"] == summary["requests"]
    assert "results' is missing or empty" in (tmp_path / "out" / "locust_failures.csv").read_text()


def test_grpc_and_rest_clients_give_the_same_probabilities(server, tmp_path, capsys):
    clip = tmp_path / "clip.m4a"
    clip.write_bytes(encode(voice(1.7, 44_100, 2, seed=8), 44_100, "m4a"))
    token = f"--token={server.token()}"
    assert cli_main(["predict", str(clip), "--grpc", server.grpc_inference_target, token]) == 0
    over_grpc = json.loads(capsys.readouterr().out)
    assert cli_main(["predict", str(clip), "--url", server.inference_url, token]) == 0
    over_rest = json.loads(capsys.readouterr().out)
    assert over_grpc["results"] == over_rest["results"]


def test_grpc_carries_the_handler_error_body(server, tmp_path, capsys):
    clip = tmp_path / "not-audio.wav"
    clip.write_bytes(b"just text")
    assert cli_main(["predict", str(clip), "--grpc", server.grpc_inference_target, f"--token={server.token()}"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "unsupported_media_type"
