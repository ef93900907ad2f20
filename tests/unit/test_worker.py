"""The engine-neutral worker (ser_serve.worker): uploads decoded one by one or in decode processes, answered in order."""

import os
import signal

import numpy as np
import pytest
import torch

from ser_serve import worker
from ser_serve.decode_pool import DecodePool
from ser_serve.errors import UnsupportedMediaType
from ser_serve.model.calibration import voice
from ser_serve.settings import ServeSettings
from ser_tools.encode import encode


def uploads():
    clips = [encode(voice(0.8 + 0.3 * i, 16_000, seed=i), 16_000, fmt) for i, fmt in enumerate(("wav", "mp3", "flac", "ogg", "m4a"))]
    return clips[:2] + [b"not audio", UnsupportedMediaType("no body")] + clips[2:]


@pytest.fixture
def pool(classifier):
    decoder = DecodePool(classifier.preparer, processes=2)
    yield decoder
    decoder.close()


def same_features(first, second):
    assert [type(x).__name__ for x in first] == [type(x).__name__ for x in second]
    for a, b in zip(first, second):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert str(a) == str(b) and getattr(a, "code", None) == getattr(b, "code", None)


def test_decode_processes_give_the_same_features_and_errors_in_the_same_order(classifier, pool):
    serial = worker.prepare_uploads(classifier, uploads())
    decoded = []
    parallel = worker.prepare_uploads(classifier, uploads(), pool, on_decoded=lambda ms, s: decoded.append(s))
    assert len(pool.pids()) == 2 and os.getpid() not in pool.pids()  # decoded in two other processes
    same_features(serial, parallel)
    assert len(decoded) == 5 and all(seconds > 0 for seconds in decoded)


def test_a_dead_decode_process_loses_no_upload_and_the_pool_starts_again(classifier, pool):
    serial = worker.prepare_uploads(classifier, uploads())
    worker.prepare_uploads(classifier, uploads(), pool)
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    same_features(serial, worker.prepare_uploads(classifier, uploads(), pool))  # decoded in the worker this time
    same_features(serial, worker.prepare_uploads(classifier, uploads(), pool))
    assert len(pool.pids()) == 2  # a new pool


def test_answers_keep_the_order_of_the_uploads_and_each_bad_one_fails_alone(classifier, pool):
    answers = worker.answer_uploads(classifier, uploads(), decoder=pool)
    assert [isinstance(a, dict) for a in answers] == [True, True, False, False, True, True, True]
    assert answers[2].code == "unsupported_media_type" and str(answers[3]) == "no body"
    clips = [u for u in uploads() if isinstance(u, bytes) and u != b"not audio"]
    for clip, answer in zip(clips, [a for a in answers if isinstance(a, dict)]):
        alone = classifier.predict(clip)
        assert answer["dominant"]["label"] == alone["dominant"]["label"]
        assert abs(answer["dominant"]["score"] - alone["dominant"]["score"]) < 1e-6


def test_decode_processes_come_from_the_cpu_or_the_gpu_settings(classifier):
    settings = ServeSettings.from_mapping({"decode_processes": 3, "gpu": {"decode_processes": 12}})
    assert worker.decode_pool(classifier, settings, None).processes == 3
    assert worker.decode_pool(classifier, settings, 0).processes == (12 if torch.cuda.is_available() else 3)
    assert ServeSettings().decode_processes == 1 and ServeSettings().gpu.decode_processes == 8


OWNER = """
import sys, time
from ser_serve import EmotionClassifier
from ser_serve.decode_pool import DecodePool
from ser_serve.model.calibration import voice
from ser_tools.encode import encode

if __name__ == "__main__":
    pool = DecodePool(EmotionClassifier.from_pretrained(sys.argv[1], device="cpu").preparer, processes=2)
    pool.prepare_all([encode(voice(1.0, seed=i), 16_000, "wav") for i in range(4)])
    print(" ".join(map(str, pool.pids())), flush=True)
    time.sleep(600)
"""


def test_decode_processes_end_when_their_worker_is_killed_outright(tiny_checkpoint, tmp_path):
    import subprocess
    import sys

    import psutil

    (tmp_path / "owner.py").write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(tmp_path / "owner.py"), str(tiny_checkpoint)], stdout=subprocess.PIPE,
                             text=True)
    try:
        decoders = [psutil.Process(int(pid)) for pid in owner.stdout.readline().split()]
        assert len(decoders) == 2
        owner.kill()  # no shutdown, no atexit: as the OOM killer or a frontend's SIGKILL does it
        owner.wait()
        gone, alive = psutil.wait_procs(decoders, timeout=15)
        assert alive == []
    finally:
        owner.kill()


@pytest.mark.parametrize("keep", [True, False])
def test_a_worker_keeps_freed_memory_as_its_settings_say(tiny_checkpoint, monkeypatch, caplog, keep):
    from ser_serve import allocator

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append("mallopt") or True)  # process-wide
    settings = ServeSettings.from_mapping({"keep_freed_memory": keep, "torch_threads": torch.get_num_threads()})
    with caplog.at_level("INFO", logger="ser_serve.worker"):
        worker.start_classifier(tiny_checkpoint, settings)
    assert calls == (["mallopt"] if keep else [])
    assert f"keeps_freed_memory={keep}" in caplog.text
    assert ServeSettings().keep_freed_memory  # on unless a model-config.yaml turns it off
