"""Hostile input, overload, worker faults and access control, against real TorchServe servers."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import start_server
from corpus import bad_cases, good_cases
from ser_serve.model.calibration import voice
from ser_tools.encode import encode

pytestmark = pytest.mark.integration


def post(server, data, headers=None, timeout=60):
    return requests.post(f"{server.inference_url}/predictions/ser", data=data,
                         headers={**server.auth_headers(), **(headers or {})}, timeout=timeout)


def worker_pids(server):
    described = requests.get(f"{server.management_url}/models/ser", headers=server.auth_headers("management"),
                             timeout=10).json()[0]
    return sorted(w["pid"] for w in described["workers"])


def test_corpus_has_at_least_30_kinds_of_bad_input():
    assert len(bad_cases()) >= 30


def test_every_bad_input_gets_a_clear_4xx_and_the_worker_survives(server):
    pids = worker_pids(server)
    problems = []
    for name, data, headers, status, code in bad_cases():
        answer = post(server, data, headers)
        if code == "frontend":  # refused by TorchServe's frontend (Netty) before any handler: bare status
            if answer.status_code != status:
                problems.append(f"{name}: {answer.status_code} instead of {status}")
            continue
        try:
            body = answer.json()
        except ValueError:
            problems.append(f"{name}: {answer.status_code} without a JSON body: {answer.text[:100]!r}")
            continue
        if answer.status_code != status:
            problems.append(f"{name}: {answer.status_code} instead of {status}: {answer.text[:150]}")
        elif "error" in body:  # our handler's answer
            if code is not None and body["error"]["code"] != code:
                problems.append(f"{name}: code {body['error']['code']} instead of {code}")
            if len(body["error"]["message"]) < 20:
                problems.append(f"{name}: message too terse: {body['error']['message']!r}")
        elif code is not None or not body.get("message"):  # TorchServe's own refusal
            problems.append(f"{name}: not our JSON error: {answer.text[:150]}")
    assert problems == []
    assert worker_pids(server) == pids  # no worker crashed or was restarted
    assert post(server, encode(voice(1.0), 16_000, "wav")).status_code == 200


@pytest.mark.parametrize("name, data", good_cases(), ids=[name for name, _ in good_cases()])
def test_valid_edge_cases_succeed(server, name, data):
    answer = post(server, data)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 8


def test_management_api_refuses_requests_without_the_management_token(server):
    assert requests.get(f"{server.management_url}/models", timeout=10).status_code == 400
    inference_token = {"Authorization": f"Bearer {server.token('inference')}"}
    assert requests.get(f"{server.management_url}/models", headers=inference_token, timeout=10).status_code == 400
    assert requests.get(f"{server.management_url}/models", headers=server.auth_headers("management"),
                        timeout=10).status_code == 200


def test_model_management_api_is_off(server):
    answer = requests.delete(f"{server.management_url}/models/ser", headers=server.auth_headers("management"),
                             timeout=10)
    assert answer.status_code == 405 and "MethodNotAllowedException" in answer.text
    assert worker_pids(server)  # still served


def test_full_queue_answers_503_quickly_and_recovers(tiny_checkpoint, tmp_path):
    """A tiny queue and slow 30 s clips: the flood overflows the queue; refusals must come fast."""
    server = start_server(tmp_path, tiny_checkpoint, {"batchSize": 1, "maxBatchDelay": 0},
                          properties={"job_queue_size": "2"})
    with server:
        server.wait_ready(timeout=180)
        slow = encode(voice(30.0, 8_000), 8_000, "wav")
        timings = []

        def one(_):
            started = time.perf_counter()
            answer = post(server, slow, timeout=120)
            timings.append((answer.status_code, time.perf_counter() - started))
            return answer.status_code

        with ThreadPoolExecutor(max_workers=24) as pool:
            statuses = list(pool.map(one, range(24)))  # bounded: 24 requests
        refused = [t for s, t in timings if s == 503]
        assert statuses.count(200) >= 1 and len(refused) >= 10, statuses
        assert max(refused) < 2.0  # refused at once, not after waiting for a worker
        assert set(statuses) <= {200, 503}
        assert post(server, encode(voice(1.0), 16_000, "wav")).status_code == 200  # serves normally again


def test_killed_worker_is_restarted_and_service_recovers_under_load(tiny_checkpoint, tmp_path):
    server = start_server(tmp_path, tiny_checkpoint)
    with server:
        server.wait_ready(timeout=180)
        clip = encode(voice(1.0), 16_000, "wav")
        (pid,) = worker_pids(server)
        results = []
        deadline = time.monotonic() + 90

        def load():  # bounded in time and count
            for _ in range(2_000):
                if time.monotonic() > deadline or (len(results) > 20 and results[-20:].count(200) == 20
                                                    and killed_at is not None
                                                    and time.monotonic() - killed_at > 1):
                    return
                try:
                    results.append(post(server, clip, timeout=30).status_code)
                except requests.RequestException:
                    results.append(0)

        killed_at = None
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(load) for _ in range(2)]
            time.sleep(1.0)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            for future in futures:
                future.result()
        assert results[-20:].count(200) == 20, results[-40:]
        recovered_pids = worker_pids(server)
        assert recovered_pids and recovered_pids != [pid]
        assert server.is_healthy()
