"""A real TorchServe, started on free loopback ports, serving an archive built from the tiny checkpoint."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests

from ser_serve.model.calibration import voice
from conftest import serve_try_and_interrupt, start_server
from ser_serve.cli import DEFAULT_CONFIG, main as cli_main
from ser_tools.encode import ENCODABLE_FORMATS, encode
from ser_serve.response import schema_problems
from ser_serve.engines.torchserve.server import read_properties, with_free_ports, write_properties

pytestmark = pytest.mark.integration
LABELS = ["angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def predict(server, data, **kwargs):
    return requests.put(f"{server.inference_url}/predictions/ser", data=data,
                        headers=server.auth_headers(), timeout=60, **kwargs)


def assert_schema(body):
    assert schema_problems(body, LABELS, tolerance=1e-5) == []


def assert_same_probabilities(a, b, tolerance=1e-5):
    a_scores = {r["label"]: r["score"] for r in a["results"]}
    b_scores = {r["label"]: r["score"] for r in b["results"]}
    assert a_scores.keys() == b_scores.keys()
    for label, score in a_scores.items():
        assert score == pytest.approx(b_scores[label], abs=tolerance), label


@pytest.mark.parametrize("fmt", ENCODABLE_FORMATS)
def test_every_format_over_rest_matches_python_api(server, classifier, fmt):
    rate = 48_000 if fmt == "opus" else 44_100
    data = encode(voice(2.0, rate, 2, seed=11), rate, fmt)
    answer = predict(server, data)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert_schema(answer.json())
    assert_same_probabilities(answer.json(), classifier.predict(data))


@pytest.mark.parametrize("fmt", ["mp3", "wav", "m4a"])
def test_multipart_upload_equals_raw_body(server, fmt):
    data = encode(voice(1.5, 16_000, seed=5), 16_000, fmt)
    multipart = requests.post(f"{server.inference_url}/predictions/ser", files={"file": (f"clip.{fmt}", data)},
                              headers=server.auth_headers(), timeout=60)
    assert multipart.status_code == 200, multipart.text
    assert_same_probabilities(multipart.json(), predict(server, data).json())


def test_concurrent_good_and_bad_requests_each_get_their_own_answer(server, classifier):
    # Lengths within 25 % of each other: the shipped padding ratio (1.25) lets them share a padded pass.
    good = [encode(voice(1.0 + 0.1 * (i % 3), 16_000, seed=i), 16_000, "wav") for i in range(8)]
    bad = [b"", b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEjunkjunk", encode(voice(40.0, 8_000), 8_000, "flac")]
    expected_status = [200] * len(good) + [400, 415, 400, 413]
    payloads = good + bad
    order = np.random.default_rng(0).permutation(len(payloads))
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        answers = dict(zip(order, pool.map(lambda i: predict(server, payloads[i]), order)))
    for i, payload in enumerate(payloads):
        answer = answers[i]
        assert answer.status_code == expected_status[i], (i, answer.text)
        if answer.status_code == 200:
            assert_same_probabilities(answer.json(), classifier.predict(payload))
        else:
            assert set(answer.json()["error"]) == {"code", "message"}
    # TorchServe really handed the handler batches of more than one request, and clips of
    # different lengths really shared a padded forward pass.
    log = [line for line in (server.workdir / "logs" / "model_log.log").read_text().splitlines() if "batch of " in line]
    assert max(int(line.split("batch of ")[1].split(":")[0]) for line in log) > 1
    assert int(log[-1].split("padded forward passes so far: ")[1].split()[0]) > 0


def test_ping_requires_the_inference_token(server):
    assert requests.get(f"{server.inference_url}/ping", timeout=5).status_code == 400
    answer = requests.get(f"{server.inference_url}/ping", headers=server.auth_headers(), timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "Healthy"


def test_predictions_without_token_are_refused(server):
    data = encode(voice(1.0), 16_000, "wav")
    answer = requests.put(f"{server.inference_url}/predictions/ser", data=data, timeout=10)
    assert answer.status_code == 400 and "Token Authorization failed" in answer.text


def test_registering_a_model_from_a_url_is_refused(server):
    answer = requests.post(f"{server.management_url}/models", params={"url": "https://example.com/evil.mar"},
                           headers=server.auth_headers("management"), timeout=10)
    assert answer.status_code >= 400
    assert requests.get(f"{server.management_url}/models", headers=server.auth_headers("management"),
                        timeout=10).json()["models"] == [{"modelName": "ser", "modelUrl": "ser.mar"},
                                                         {"modelName": "ser-timeline", "modelUrl": "ser-timeline.mar"}]


def test_every_listening_port_is_on_loopback(server):
    listening = [c for p in server.running_processes() for c in _connections(p) if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 5  # inference, management, metrics, 2 x gRPC
    assert {c.laddr.ip for c in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}


def test_cli_predict_over_rest_equals_in_process(server, tiny_checkpoint, tmp_path, capsys):
    clip = tmp_path / "clip.ogg"
    clip.write_bytes(encode(voice(1.2, 16_000, seed=4), 16_000, "ogg"))
    assert cli_main(["predict", str(clip), "--url", server.inference_url, f"--token={server.token()}"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert cli_main(["predict", str(clip), "--model-dir", str(tiny_checkpoint)]) == 0
    local = json.loads(capsys.readouterr().out)
    assert remote["status"] == 200
    assert_same_probabilities(remote, local)


def test_server_is_stopped_even_when_the_test_body_fails(tiny_checkpoint, tmp_path):
    server = start_server(tmp_path, tiny_checkpoint)
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            server.wait_ready(timeout=180)
            assert len(server.running_processes()) >= 3  # torchserve, java frontend, python worker
            raise RuntimeError("boom")
    assert server.process.poll() is not None
    assert server.running_processes() == []


def _connections(process):
    try:
        return process.net_connections(kind="inet")
    except psutil.Error:
        return []


def test_serve_command_prints_a_working_curl_line_and_stops_on_ctrl_c(tiny_checkpoint, tmp_path):
    import sys

    config = write_properties(with_free_ports(read_properties(DEFAULT_CONFIG)), tmp_path / "config.properties")
    command = [sys.executable, "-m", "ser_serve.cli", "serve", "--model-dir", str(tiny_checkpoint),
               "--config", str(config), "--workdir", str(tmp_path / "work"), "--model-store", str(tmp_path / "store")]
    answer = serve_try_and_interrupt(command)
    assert (tmp_path / "store" / "ser.mar").is_file()
    assert_schema(answer)
