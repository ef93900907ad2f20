"""Training augmentation: seeded, same length, within range, and each degradation does what it says."""

import numpy as np
import pytest
from scipy.signal import welch

from ser_train import augment
from ser_train.synth import Speaker, utterance


@pytest.fixture(scope="module")
def voice():
    return utterance("neutral", 2.0, Speaker(130.0, 1.0), np.random.default_rng(0), snr_db=40)


def test_augmentation_is_seeded_and_keeps_length_and_range(voice):
    for seed in range(12):
        a = augment.augment(voice, np.random.default_rng(seed), p=1.0)
        b = augment.augment(voice, np.random.default_rng(seed), p=1.0)
        assert np.array_equal(a, b)
        assert a.dtype == np.float32 and len(a) == len(voice) and np.abs(a).max() <= 1.0 and np.isfinite(a).all()
    different = {augment.augment(voice, np.random.default_rng(s), p=1.0).tobytes() for s in range(5)}
    assert len(different) == 5
    assert np.array_equal(augment.augment(voice, np.random.default_rng(0), p=0.0), voice)


def band_energy(x, low, high):
    f, p = welch(x, fs=16_000, nperseg=1024)
    return p[(f >= low) & (f < high)].sum() / p.sum()


def test_telephone_band_removes_low_and_high_frequencies(voice):
    phone = augment.band_limit(voice, 300.0, 3400.0)
    assert band_energy(phone, 0, 200) < 0.1 * band_energy(voice, 0, 200)
    assert band_energy(phone, 4500, 8000) < 0.05 * band_energy(voice, 4500, 8000)


def test_noise_is_added_at_the_requested_snr(voice):
    noisy = augment.add_noise(voice.astype(np.float64), 10.0, np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(voice.astype(np.float64) ** 2) / np.mean((noisy - voice) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_room_impulse_response_decays_exponentially():
    ir = augment.impulse_response(0.5, np.random.default_rng(2), seconds=0.5)
    early, late = np.sum(ir[1:800] ** 2), np.sum(ir[-800:] ** 2)  # first and last 50 ms of the tail
    assert ir[0] == 1.0 and late < 1e-4 * early  # 60 dB per rt60: about 50 dB between these windows


@pytest.mark.parametrize("codec", augment.CODECS, ids=lambda c: f"{c[0]}-{c[2]}")
def test_codec_round_trip_keeps_length_and_loses_detail(voice, codec):
    out = augment.codec_round_trip(voice, *codec)
    assert len(out) == len(voice) and out.dtype == np.float32
    assert not np.array_equal(out, voice)
    # The level survives (the codec is not silence); the narrowband AMR loses everything above 4 kHz.
    assert 0.5 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(voice**2)) < 1.5
    if codec[0] == "libopencore_amrnb":
        assert band_energy(out, 4200, 8000) < 0.01


def test_other_voice_is_seeded_and_keeps_length_and_range(voice):
    shifts = []
    for seed in range(6):
        a, semitones = augment.other_voice(voice, np.random.default_rng(seed), p=1.0)
        again, same = augment.other_voice(voice, np.random.default_rng(seed), p=1.0)
        assert np.array_equal(a, again) and semitones == same
        assert a.dtype == np.float32 and len(a) == len(voice) and np.abs(a).max() <= 1.0 and np.isfinite(a).all()
        assert abs(semitones) <= 2.0
        shifts.append(semitones)
    assert any(shifts) and 0.0 in shifts  # a shift with probability 0.7, reported; none reported as 0
    unchanged, none = augment.other_voice(voice, np.random.default_rng(0), p=0.0)
    assert np.array_equal(unchanged, voice) and none == 0.0


def test_other_voice_reports_the_shift_it_made(voice):
    for seed in range(8):
        shifted, semitones = augment.other_voice(voice, np.random.default_rng(seed), p=1.0)
        if abs(semitones) > 1.0:
            # (the random colouring after the shift moves YIN's median a little: within 0.75 semitone here)
            assert 12 * np.log2(median_f0(shifted) / median_f0(voice)) == pytest.approx(semitones, abs=0.75)
            return
    pytest.fail("no seed of 8 shifted the voice by more than a semitone")


def median_f0(x):
    """The median F0 (YIN, 60..500 Hz) over the clip's frames."""
    import librosa

    return float(np.median(librosa.yin(np.asarray(x, dtype=np.float32), fmin=60, fmax=500, sr=16_000)))


def test_voice_shift_moves_pitch_by_the_semitones_asked(voice):
    up = augment.shift_voice(voice, 2.0)
    assert len(up) == len(voice)
    assert median_f0(up) / median_f0(voice) == pytest.approx(2 ** (2 / 12), rel=0.06)


def test_colouring_changes_the_spectrum_not_the_length_or_peak(voice):
    coloured = augment.colour(voice.astype(np.float64), np.random.default_rng(3), depth_db=12.0)
    assert len(coloured) == len(voice)
    assert np.abs(coloured).max() == pytest.approx(np.abs(voice).max(), rel=1e-6)
    assert abs(band_energy(coloured, 0, 1000) - band_energy(voice, 0, 1000)) > 0.01


def spectral_centroid(x):
    f, p = welch(x, fs=16_000, nperseg=1024)
    return float((f * p).sum() / p.sum())


def test_formant_warp_moves_the_formants_and_keeps_the_pitch_length_and_peak(voice):
    up, down = augment.warp_formants(voice, 1.25), augment.warp_formants(voice, 0.8)
    for warped in (up, down):
        assert warped.dtype == np.float32 and len(warped) == len(voice)
        assert np.abs(warped).max() == pytest.approx(np.abs(voice).max(), rel=1e-4)
        assert median_f0(warped) == pytest.approx(median_f0(voice), rel=0.03)
    # Not WORLD's resynthesis alone: the spectrum moves the way the warp says, and by more than a round trip does.
    same = spectral_centroid(augment.warp_formants(voice, 1.0))
    assert spectral_centroid(down) < 0.9 * same
    assert spectral_centroid(up) > 1.1 * same


def test_world_speaker_moves_the_pitch_by_the_factor_and_the_formants_by_the_warp(voice):
    """ser_train.augment.world_speaker: another speaker's pitch (x1.5 and x0.75) with the formants moved as asked,
    or kept (warp 1), so that pitch and vocal tract can be varied together or apart."""
    same = augment.world_speaker(voice, 1.0, 1.0)
    for pitch in (1.5, 0.75):
        alone, coupled = augment.world_speaker(voice, pitch, 1.0), augment.world_speaker(voice, pitch, pitch**0.33)
        for shifted in (alone, coupled):
            assert shifted.dtype == np.float32 and len(shifted) == len(voice)
            assert median_f0(shifted) == pytest.approx(pitch * median_f0(voice), rel=0.04)
        # The envelope is WORLD's from the original clip: pitch alone leaves the formants about where they were.
        assert spectral_centroid(alone) == pytest.approx(spectral_centroid(same), rel=0.08)
    assert spectral_centroid(augment.world_speaker(voice, 1.5, 1.25)) > 1.1 * spectral_centroid(same)
    assert spectral_centroid(augment.world_speaker(voice, 0.75, 0.8)) < 0.9 * spectral_centroid(same)


def test_training_clips_are_held_as_pcm16_and_read_back_exactly(voice):
    """ser_train.train keeps decoded clips and their codec copies as 16-bit PCM (half of float32's memory):
    exact for the 16-bit WAV that ``ser-serve synth`` writes, and the augmented items are float32 again."""
    import io
    import wave

    from ser_train import train
    from ser_train.dataset import Example

    pcm = np.round(voice * 0.9 * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000), out.writeframes(pcm.tobytes())
    served = train.load_waveform(buffer.getvalue())  # what the server's decoder makes of the file

    decoded = train.decode_all([Example(buffer.getvalue(), "happy")] * 3, {"happy": 5}, "decode")
    assert all(samples.dtype == np.int16 for samples, _ in decoded.clips)
    waveform, label = decoded[0]
    assert waveform.dtype == np.float32 and label == 5 and np.array_equal(waveform, served)
    assert [len(x) for x, _ in decoded] == decoded.lengths() == [len(served)] * 3

    plain_features = lambda waveform, **_: {"input_values": [waveform]}  # noqa: E731 (the extractor's call shape)
    clips = train.AugmentedClips(decoded, plain_features, probability=1.0, seed=0)
    assert clips.coded and all(copy.dtype == np.int16 for copy in clips.coded.values())
    assert clips.lengths() == decoded.lengths()
    items = [clips[i][0] for i in range(3) for _ in range(4)]
    assert all(x.dtype == np.float32 and len(x) == len(served) and np.abs(x).max() <= 1.0 for x in items)
