"""The Python API checks arrays as strictly as uploads: same limits, same typed errors."""

import numpy as np
import pytest

from ser_serve.errors import AudioTooLong, EmptyInput, InvalidAudio
from ser_serve.model.calibration import voice
from ser_tools.encode import encode


def test_ten_minute_array_is_refused_like_a_ten_minute_upload(classifier):
    ten_minutes = np.zeros(600 * 8_000, dtype=np.float32)  # 8 kHz, so the WAV stays under the byte limit
    with pytest.raises(AudioTooLong, match="The array is 600.0 s long; the limit is 30 s"):
        classifier.predict(ten_minutes, sample_rate=8_000)
    with pytest.raises(AudioTooLong, match="The wav file is 600.0 s long; the limit is 30 s"):
        classifier.predict(encode(ten_minutes, 8_000, "wav"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(classifier, bad):
    samples = voice(1.0)
    samples[100] = bad
    with pytest.raises(InvalidAudio, match="NaN or infinite"):
        classifier.predict(samples, sample_rate=16_000)


@pytest.mark.parametrize("rate", [0, -16_000, 16_000.0, True, 4_000, 400_000])
def test_sample_rate_must_be_a_positive_integer_within_the_limits(classifier, rate):
    with pytest.raises(InvalidAudio, match="sample rate|sample_rate"):
        classifier.predict(voice(1.0), sample_rate=rate)


def test_channels_first_array_is_refused_with_a_hint(classifier):
    stereo = voice(1.0, channels=2)            # (frames, 2)
    with pytest.raises(InvalidAudio, match=r"looks channels-first.*array\.T"):
        classifier.predict(stereo.T, sample_rate=16_000)
    assert classifier.predict(stereo, sample_rate=16_000) == classifier.predict(stereo.T.T.copy(), sample_rate=16_000)


@pytest.mark.parametrize("shape", [(0,), (0, 2), (2, 3, 4)])
def test_empty_or_three_dimensional_arrays_are_refused(classifier, shape):
    with pytest.raises((EmptyInput, InvalidAudio)):
        classifier.predict(np.zeros(shape, dtype=np.float32), sample_rate=16_000)


def test_integer_pcm_is_scaled_not_cast(classifier):
    clip = voice(1.5, seed=4)
    as_int16 = np.round(clip * 32767).astype(np.int16)
    scaled = classifier.prepare(as_int16, 16_000)
    assert np.allclose(scaled, classifier.prepare(as_int16.astype(np.float32) / 32767, 16_000), atol=1e-4)


def test_non_numeric_arrays_are_refused(classifier):
    with pytest.raises(InvalidAudio, match="dtype"):
        classifier.predict(np.array(["a", "b"]), sample_rate=16_000)


def test_predict_batch_takes_the_sample_rate_of_its_arrays(classifier):
    clips = [voice(1.2, 44_100, seed=1), voice(2.0, 44_100, seed=2)]
    batch = classifier.predict_batch(clips, sample_rate=44_100)
    assert batch == [classifier.predict(clip, sample_rate=44_100) for clip in clips]
    with pytest.raises(InvalidAudio, match="4000 Hz"):
        classifier.predict_batch(clips, sample_rate=4_000)


def test_sample_rate_with_an_encoded_file_is_an_error(classifier):
    with pytest.raises(TypeError, match="only for arrays"):
        classifier.predict(encode(voice(1.0), 16_000, "wav"), sample_rate=44_100)
