"""The served preprocessing and model path equals the model card's reference code."""

import numpy as np
import pytest

from ser_serve.model.calibration import voice
from ser_tools.encode import encode
from conftest import spy, stock_reference
from ser_serve.model import forward


def reference_probabilities(wav_path, checkpoint):
    """The reference path, written out as users run it outside the server."""
    import librosa
    import soundfile

    audio, rate = soundfile.read(wav_path)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = librosa.resample(audio, orig_sr=rate, target_sr=16_000)
    if len(audio) < 1_600:
        audio = np.pad(audio, (0, 16_000 - len(audio)))
    return stock_reference(checkpoint, audio)


@pytest.mark.parametrize(
    "seconds, rate, channels",
    [(2.0, 16_000, 1), (1.7, 44_100, 2), (3.1, 48_000, 2), (0.05, 22_050, 1)],
    ids=["16k-mono", "44k1-stereo", "48k-stereo", "50ms-padded"],
)
def test_served_probabilities_equal_reference_for_wav(tmp_path, tiny_checkpoint, classifier, seconds, rate, channels):
    path = tmp_path / "clip.wav"
    path.write_bytes(encode(voice(seconds, rate, channels, seed=3), rate, "wav"))
    expected = reference_probabilities(path, tiny_checkpoint)
    response = classifier.predict(path)
    got = {item["label"]: item["score"] for item in response["results"]}
    assert got.keys() == expected.keys()
    for label in expected:
        assert got[label] == pytest.approx(expected[label], abs=1e-5)
    # The test only means something if the model's answer depends on its input.
    assert max(expected.values()) - min(expected.values()) > 0.01


def test_batch_of_mixed_lengths_equals_each_clip_alone(classifier, monkeypatch):
    # Within 25 % of each other, so the shipped padding ratio (1.25) puts them in one padded pass.
    clips = [voice(s, 16_000, seed=i) for i, s in enumerate([1.0, 1.1, 1.2, 1.05])]
    features = [classifier.prepare(clip) for clip in clips]
    alone = np.stack([classifier.model.predict_proba([f])[0] for f in features])
    calls = spy(monkeypatch, forward, "padded_logits", "per_clip_conv")
    batched = classifier.model.predict_proba(features)
    assert calls == {"padded_logits": 1, "per_clip_conv": 1}  # one pass, the group-norm conv run per clip
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)


def test_predict_accepts_path_bytes_and_array_alike(tmp_path, classifier):
    samples = voice(1.5, 16_000, seed=9)
    data = encode(samples, 16_000, "flac")
    path = tmp_path / "clip.flac"
    path.write_bytes(data)
    from_path = classifier.predict(path)
    assert classifier.predict(data) == from_path
    from_array = classifier.predict(samples)
    for a, b in zip(from_array["results"], from_path["results"]):
        assert a["label"] == b["label"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)  # flac is 16-bit, the array is float


def test_array_at_other_rate_is_resampled(classifier):
    samples = voice(1.0, 48_000, seed=2)
    features = classifier.prepare(samples, sample_rate=48_000)
    assert len(features) == 16_000
