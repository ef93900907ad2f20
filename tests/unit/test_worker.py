"""The engine-neutral worker (ser_serve.worker): uploads decoded one by one or in parallel, answered in order."""

import threading

import numpy as np
import torch

from ser_serve import worker
from ser_serve.errors import UnsupportedMediaType
from ser_serve.model.calibration import voice
from ser_serve.settings import ServeSettings
from ser_tools.encode import encode


def uploads():
    clips = [encode(voice(0.8 + 0.3 * i, 16_000, seed=i), 16_000, fmt) for i, fmt in enumerate(("wav", "mp3", "flac", "ogg", "m4a"))]
    return clips[:2] + [b"not audio", UnsupportedMediaType("no body")] + clips[2:]


def test_parallel_decoding_gives_the_same_features_in_the_same_order_on_several_threads(classifier, monkeypatch):
    threads_used = set()
    prepare = classifier.prepare

    def recording(upload):
        threads_used.add(threading.get_ident())
        return prepare(upload)

    serial = worker.prepare_uploads(classifier, uploads(), threads=1)
    monkeypatch.setattr(classifier, "prepare", recording)
    decoded = []
    parallel = worker.prepare_uploads(classifier, uploads(), threads=4, on_decoded=lambda ms, s: decoded.append(s))
    assert len(threads_used) > 1  # the pool really ran the decoders
    assert [type(x).__name__ for x in parallel] == [type(x).__name__ for x in serial]
    for a, b in zip(serial, parallel):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert str(a) == str(b)
    assert len(decoded) == 5 and all(seconds > 0 for seconds in decoded)


def test_answers_keep_the_order_of_the_uploads_and_each_bad_one_fails_alone(classifier):
    answers = worker.answer_uploads(classifier, uploads(), threads=2)
    assert [isinstance(a, dict) for a in answers] == [True, True, False, False, True, True, True]
    assert answers[2].code == "unsupported_media_type" and str(answers[3]) == "no body"
    clips = [u for u in uploads() if isinstance(u, bytes) and u != b"not audio"]
    for clip, answer in zip(clips, [a for a in answers if isinstance(a, dict)]):
        alone = classifier.predict(clip)
        assert answer["dominant"]["label"] == alone["dominant"]["label"]
        assert abs(answer["dominant"]["score"] - alone["dominant"]["score"]) < 1e-6


def test_decode_threads_come_from_the_cpu_or_the_gpu_settings():
    settings = ServeSettings.from_mapping({"decode_threads": 3, "gpu": {"decode_threads": 12}})
    assert worker.decode_threads(settings, None) == 3
    assert worker.decode_threads(settings, 0) == (12 if torch.cuda.is_available() else 3)
