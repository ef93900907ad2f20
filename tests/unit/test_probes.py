"""The readiness wait: a probe that is refused or answered late means "not ready yet", never a crash."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ser_serve.clients.probes import wait_until_ready


def slow_starting_server(late_answers: int, delay_s: float):
    """A loopback server whose first ``late_answers`` /readyz answers come after ``delay_s``, then 200 at once."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(time.monotonic())
            if len(calls) <= late_answers:
                time.sleep(delay_s)  # accepted, still loading: the probe gives up before this answer
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def test_answers_later_than_the_probe_timeout_are_waited_through_until_ready():
    server, calls = slow_starting_server(late_answers=2, delay_s=0.6)
    try:
        wait_until_ready(f"http://127.0.0.1:{server.server_address[1]}", timeout=20, probe_timeout=0.2)
    finally:
        server.shutdown()
    assert len(calls) == 3  # two probes timed out, the third was answered 200


def test_a_server_that_never_answers_in_time_ends_in_timeout_error_with_its_description():
    server, calls = slow_starting_server(late_answers=1000, delay_s=0.5)
    try:
        with pytest.raises(TimeoutError, match="was not ready within 2 s\nlog tail"):
            wait_until_ready(f"http://127.0.0.1:{server.server_address[1]}", timeout=2, probe_timeout=0.1,
                             describe=lambda: "log tail")
    finally:
        server.shutdown()
    assert len(calls) >= 2


def test_a_server_that_exited_ends_in_runtime_error():
    with pytest.raises(RuntimeError, match="exited before it was ready"):
        wait_until_ready("http://127.0.0.1:9", timeout=5, still_running=lambda: False)
