"""The card's POST /predict on the gateway: what clients of the card send gets the card's answer."""

import asyncio
import subprocess
import sys
import threading

import httpx
import pytest
import requests

from conftest import kill_with_its_server
from ser_serve.clients.probes import wait_until_ready
from ser_serve.engines.torchserve.server import free_port
from ser_serve.gateway.app import Auth, DrainState, create_app, in_process_engine
from ser_serve.model.calibration import voice
from ser_serve.response import schema_problems
from ser_tools.encode import encode

pytestmark = pytest.mark.integration
CLIP = encode(voice(1.5, 44_100, 2, seed=6), 44_100, "wav")


@pytest.fixture(scope="module")
def gateway(tiny_checkpoint):
    """`ser-serve gateway --model-dir` (the card's own shape: no model server) on a free loopback port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ser_serve.cli", "gateway", "--model-dir", str(tiny_checkpoint),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, 120, lambda: process.poll() is None)
        yield url
    finally:
        kill_with_its_server(process)


def test_card_clients_get_the_cards_answer_however_they_send_the_file(gateway, classifier):
    expected = classifier.predict(CLIP)
    multipart = requests.post(f"{gateway}/predict", files={"file": ("clip.wav", CLIP, "audio/wav")}, timeout=60)
    # curl --data-binary @clip.wav: form-urlencoded content type, raw audio bytes.
    data_binary = requests.post(f"{gateway}/predict", data=CLIP, timeout=60,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    raw = requests.post(f"{gateway}/predict", data=CLIP, headers={"Content-Type": "audio/wav"}, timeout=60)
    other_field = requests.post(f"{gateway}/predict", files={"audio": ("clip.wav", CLIP)}, timeout=60)
    for answer in (multipart, data_binary, raw, other_field):
        assert answer.status_code == 200, answer.text
        assert schema_problems(answer.json()) == []
        got = answer.json()["results"]
        assert [r["label"] for r in got] == [r["label"] for r in expected["results"]]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected["results"]], abs=1e-6)


def test_bad_uploads_get_the_projects_error_schema(gateway):
    two = requests.post(f"{gateway}/predict", files={"a": ("a.wav", CLIP), "b": ("b.wav", CLIP)}, timeout=60)
    assert two.status_code == 400 and two.json()["error"]["code"] == "one_file_per_request"
    not_audio = requests.post(f"{gateway}/predict", files={"file": ("notes.txt", b"hello there")}, timeout=60)
    assert not_audio.status_code == 415 and not_audio.json()["error"]["code"] == "unsupported_media_type"
    assert not_audio.json()["error"]["request_id"] == not_audio.headers["X-Request-ID"]
    huge = requests.post(f"{gateway}/predict", data=bytes(13 * 1024 * 1024), timeout=60)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


def test_openapi_declares_the_request_and_response_exactly(gateway):
    schema = requests.get(f"{gateway}/openapi.json", timeout=10).json()
    predict = schema["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/PredictResponse")
    assert set(schema["components"]["schemas"]["PredictResponse"]["required"]) == {"results", "dominant"}
    assert "swagger" in requests.get(f"{gateway}/docs", timeout=10).text.lower()
    page = requests.get(f"{gateway}/", timeout=10)
    assert page.ok and 'id="record"' in page.text and "/static/page.js" in page.text
    assert "MediaRecorder" in requests.get(f"{gateway}/static/page.js", timeout=10).text


def test_one_client_cannot_hold_more_than_its_share_of_requests(tiny_checkpoint):
    """The second request of a client whose first is still running gets 429; other clients are not affected."""
    release, started = threading.Event(), threading.Event()

    class Slow:
        def predict(self, body):
            started.set()
            release.wait(30)
            return {"results": [{"label": "happy", "score": 1.0}], "dominant": {"label": "happy", "score": 1.0}}

    app = create_app(in_process_engine(Slow()), Auth(), DrainState(), max_in_flight_per_client=1)

    async def scenario():
        first_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1)),
                                         base_url="http://gateway")
        other_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.2", 1)),
                                         base_url="http://gateway")
        first = asyncio.create_task(first_client.post("/predict", content=CLIP))
        while not started.is_set():
            await asyncio.sleep(0.01)
        second = await first_client.post("/predict", content=CLIP)
        release_later = asyncio.get_running_loop().call_later(0.2, release.set)
        other = await other_client.post("/predict", content=CLIP)  # waits for the release, then answers
        release_later.cancel()
        return (await first), second, other

    first, second, other = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "too_many_requests"
    assert second.headers["Retry-After"] == "1"
    assert other.status_code == 200


def test_timeline_of_a_long_two_channel_recording_in_process(gateway):
    import numpy as np

    rate = 16_000
    left, right = voice(40.0, rate, seed=7), voice(40.0, rate, seed=8)
    right[: 20 * rate] = 0.0  # the second speaker is silent for the first 20 s
    call = encode(np.stack([left, right], axis=1), rate, "wav")
    assert requests.post(f"{gateway}/predict", data=call, timeout=60).json()["error"]["code"] == "audio_too_long"
    answer = requests.post(f"{gateway}/timeline", files={"file": ("call.wav", call)}, data={"channels": "separate"},
                           timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["channels"] == 2 and body["duration"] == pytest.approx(40.0, abs=0.1)
    assert {segment["channel"] for segment in body["segments"]} == {0, 1}
    assert all(segment["start"] >= 19.5 for segment in body["segments"] if segment["channel"] == 1)
    assert [lane["channel"] for lane in body["summary"]["channels"]] == [0, 1]
