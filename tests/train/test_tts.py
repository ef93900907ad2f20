"""Text-to-speech generators: 16 kHz mono clips whose prosody moves the way the label says."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ser_train import tts
from ser_train.synth import EMOTIONS

SENTENCE = "The train leaves at seven in the morning and arrives before noon."
VOICE = {"espeak-ng": "en-us+m3", "flite": "kal16", "festival": "kal_diphone", "hts": "slt", "accented": "pc",
         "accented2": "dita"}


def voiced_f0(x) -> np.ndarray:
    """F0 (Hz) of a clip's voiced frames, in order (pYIN)."""
    import librosa

    f0, voiced, _ = librosa.pyin(x, fmin=60, fmax=500, sr=16_000, frame_length=1024)
    return f0[voiced]


def final_rise(x) -> float:
    """Semitones from the clip's median F0 to its last voiced tenth."""
    tones = 12 * np.log2(voiced_f0(x))
    return float(np.median(tones[-max(1, len(tones) // 10):]) - np.median(tones))


def measure(x):
    """Median F0 (Hz, voiced frames), duration (s) and RMS of a clip."""
    return float(np.median(voiced_f0(x))), len(x) / 16_000, float(np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize("engine", tts.ENGINES)
def test_angry_is_higher_faster_and_louder_than_sad_and_surprise_is_higher_than_neutral(engine, tts_engines):
    jobs = [tts.Job(SENTENCE, tts.emotion_prosody(e), VOICE[engine], 1.0, 1.0) for e in ("angry", "sad", "neutral", "surprise")]
    angry, sad, neutral, surprise = tts.render(engine, jobs, np.random.default_rng(0))
    for clip in (angry, sad, neutral, surprise):
        assert clip.dtype == np.float32 and clip.ndim == 1 and np.abs(clip).max() <= 1.0
    (angry_f0, angry_s, angry_rms), (sad_f0, sad_s, sad_rms) = measure(angry), measure(sad)
    neutral_f0, neutral_s, _ = measure(neutral)
    assert angry_f0 > 1.3 * sad_f0
    assert angry_s < 0.7 * sad_s           # the same sentence, spoken faster
    assert angry_rms > 2 * sad_rms
    assert sad_f0 < neutral_f0 < angry_f0
    assert measure(surprise)[0] > 1.25 * neutral_f0
    assert angry_s < neutral_s < sad_s


def test_clips_come_out_at_16_khz_through_the_serving_decoder(tts_engines, monkeypatch):
    import ser_train.tts as module

    rates = []
    original = module.load_waveform

    def spy(data):
        import io

        import soundfile

        rates.append(soundfile.info(io.BytesIO(data)).samplerate)
        return original(data)

    monkeypatch.setattr(module, "load_waveform", spy)
    clips = list(tts.generate("flite", 1, seed=1, split="test"))  # flite's kal voice writes 8 kHz: resampled
    assert len(clips) == len(EMOTIONS) and 8_000 in rates
    for emotion, samples, job in clips:
        assert samples.dtype == np.float32 and samples.ndim == 1 and 1.0 < len(samples) / 16_000 < 10
        assert job.text in tts.SENTENCES[slice(*tts.SENTENCE_SPLIT["test"])]


@pytest.mark.parametrize("engine", tts.ENGINES)
def test_generation_is_deterministic_for_a_seed_and_covers_every_label(engine, tts_engines):
    first = [(e, j, x.tobytes()) for e, x, j in tts.generate(engine, 1, seed=5, split="validation")]
    again = [(e, j, x.tobytes()) for e, x, j in tts.generate(engine, 1, seed=5, split="validation")]
    assert first == again
    assert [e for e, *_ in first] == list(EMOTIONS)
    assert len({j.voice for _, j, _ in first} | {j.speaker_pitch for _, j, _ in first}) > 1  # several speakers


def test_a_wider_speaker_pitch_range_changes_the_speakers_pitch_and_nothing_else(tts_engines):
    # hts goes through WORLD, whose F0 the range moves without touching the envelope.
    default = list(tts.generate("hts", 1, seed=8, split="train"))
    octave = tts.SpeakerPitch(2 ** -0.5, 2 ** 0.5)
    wide = list(tts.generate("hts", 1, seed=8, split="train", speaker_pitch=octave))
    assert [(e, replace(j, speaker_pitch=0)) for e, _, j in default] == [(e, replace(j, speaker_pitch=0)) for e, _, j in wide]
    low, high = tts.SPEAKER_PITCH.low, tts.SPEAKER_PITCH.high
    for (_, x, j), (_, y, k) in zip(default, wide):
        assert low <= j.speaker_pitch <= high and octave.low <= k.speaker_pitch <= octave.high
        # the same uniform draw mapped onto either range, and the clip's measured F0 moves with it
        assert (j.speaker_pitch - low) / (high - low) == pytest.approx((k.speaker_pitch - octave.low) / (octave.high - octave.low))
        expected = 12 * np.log2(k.speaker_pitch / j.speaker_pitch)
        measured = 12 * np.log2(np.median(voiced_f0(y)) / np.median(voiced_f0(x)))
        assert measured == pytest.approx(expected, abs=1.0)


def test_a_semitone_range_draws_speakers_evenly_in_semitones_from_the_same_random_numbers():
    nine = tts.SpeakerPitch.semitones(-9, 9)
    default, symmetric = (tts.random_job("flite", "happy", "Hello.", np.random.default_rng(3), pitch)
                          for pitch in (tts.SPEAKER_PITCH, nine))
    rngs = np.random.default_rng(4), np.random.default_rng(4)
    linear = np.array([tts.SPEAKER_PITCH.draw(rngs[0]) for _ in range(4000)])
    semitones = 12 * np.log2([nine.draw(rngs[1]) for _ in range(4000)])
    # one uniform draw per speaker, mapped linearly onto the multiplier or onto semitones
    np.testing.assert_allclose((linear - 0.85) / 0.4, (semitones + 9) / 18, atol=1e-9)
    assert semitones.min() >= -9 and semitones.max() <= 9 and abs(np.median(semitones)) < 0.5
    assert np.mean(semitones < 0) == pytest.approx(0.5, abs=0.03)  # as many speakers below the voice as above
    assert replace(default, speaker_pitch=0) == replace(symmetric, speaker_pitch=0)  # the speaker's pitch alone differs


def test_only_the_training_split_gets_the_wider_speaker_pitch_range(tmp_path, tts_engines):
    import pyarrow.parquet as pq

    from ser_train.dataset import read_examples, write_synthetic_dataset

    counts = {"train": 1, "validation": 1, "test": 1}
    default = write_synthetic_dataset(tmp_path / "default", 9, counts, ("flite",))
    wide = write_synthetic_dataset(tmp_path / "wide", 9, counts, ("flite",), tts_train_speaker_pitch=tts.SpeakerPitch(0.5, 0.6))
    for split in ("validation", "test"):
        assert pq.read_table(default[split]).equals(pq.read_table(wide[split]))
    audio = [pq.read_table(paths["train"])["audio"].to_pylist() for paths in (default, wide)]
    assert all(a != b for a, b in zip(*audio))  # every training clip is spoken lower
    # and each clip's multiplier is kept (the speaker_pitch column, for ser-serve train --pitch-smoothing)
    assert all(0.5 <= e.speaker_pitch <= 0.6 for e in read_examples(wide["train"]))
    assert all(0.85 <= e.speaker_pitch <= 1.25 for e in read_examples(wide["test"]))


def test_sentences_of_the_splits_are_disjoint():
    splits = [set(tts.SENTENCES[slice(*bounds)]) for bounds in tts.SENTENCE_SPLIT.values()]
    assert sum(len(s) for s in splits) == len(set(tts.SENTENCES)) == len(tts.SENTENCES)


def test_prosody_follows_synth_profiles_direction():
    p = {e: tts.emotion_prosody(e) for e in EMOTIONS}
    assert p["neutral"] == tts.Prosody(1.0, 1.0, 1.0, p["neutral"].volume, ".")
    assert p["angry"].pitch > 1 > p["sad"].pitch and p["angry"].rate > 1 > p["sad"].rate
    assert p["sad"].volume < p["neutral"].volume < p["angry"].volume
    assert p["surprise"].ending == "?" and max(v.range for v in p.values()) == p["surprise"].range


def test_check_set_speaks_sentences_and_rules_that_no_split_of_the_data_has():
    from ser_train import tts_check

    assert not set(tts_check.SENTENCES) & set(tts.SENTENCES)
    assert set(tts_check.RULES) == set(EMOTIONS)
    assert all(tts_check.RULES[e] != tts.emotion_prosody(e) for e in EMOTIONS)
    rules = tts_check.RULES  # the textbook directions: sad low and slow, fear fastest, surprise highest and widest
    assert rules["sad"].pitch < rules["neutral"].pitch < rules["angry"].pitch and rules["sad"].rate < 1 < rules["angry"].rate
    assert max(r.rate for r in rules.values()) == rules["fear"].rate
    assert max(r.pitch for r in rules.values()) == rules["surprise"].pitch and rules["surprise"].ending == "?"


def test_check_renders_every_engine_and_reports_each_model_per_engine(tts_engines, tiny_checkpoint, tmp_path):
    import json

    from ser_train import tts_check
    from ser_train.dataset import read_examples

    assert tts_check.main(["--model-dir", str(tiny_checkpoint), "--out", str(tmp_path), "--per-label", "1"]) == 0
    examples = read_examples(tmp_path / "set" / "check.parquet", "audio", "label", extra_column="generator")
    engines = tts_check.DEFAULT_ENGINES
    assert sorted((e.extra, e.label) for e in examples) == sorted((g, l) for g in engines for l in EMOTIONS)
    figures = json.loads((tmp_path / "summary.json").read_text())["models"][str(tiny_checkpoint)]
    assert {name: f["examples"] for name, f in figures.items()} == {**{g: 8 for g in engines}, "all": 8 * len(engines)}
    assert all(0 <= f["accuracy"] <= 1 and 0 <= f["ece"] <= 1 for f in figures.values())
    assert (tmp_path / f"0-{tiny_checkpoint.name}" / "all" / "confusion.png").exists()
    assert str(tiny_checkpoint) in (tmp_path / "summary.md").read_text()


def test_a_clip_festival_aborts_on_is_spoken_higher_alone_and_its_batch_neighbours_are_kept(tts_engines, monkeypatch,
                                                                                             capsys):
    import subprocess

    import ser_train.tts as module

    doomed = tts.Job(SENTENCE, tts.emotion_prosody("neutral"), "kal_diphone", 0.8, 1.0)
    mean_hz = tts.FESTIVAL_VOICES["kal_diphone"][0]
    level = f"(target_f0_mean {mean_hz * 0.8:.1f})"
    real_run = subprocess.run

    def festival_that_aborts_at_that_level(command, *args, **kwargs):
        if command[0] == "festival" and level in Path(command[-1]).read_text():
            raise subprocess.CalledProcessError(-6, command)  # what festival's heap corruption looks like
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(module.subprocess, "run", festival_that_aborts_at_that_level)
    neighbour = tts.Job(SENTENCE, tts.emotion_prosody("angry"), "kal_diphone", 1.0, 1.0)
    first, middle, last = tts.render("festival", [neighbour, doomed, neighbour], np.random.default_rng(0))
    assert "spoken 10% higher" in capsys.readouterr().err
    assert len(first) == len(last) and np.corrcoef(first, last)[0, 1] > 0.99  # the same clip, other noise
    as_voiced = tts.render("festival", [replace(doomed, speaker_pitch=1.0)], np.random.default_rng(0))[0]
    assert measure(middle)[0] == pytest.approx(1.1 * 0.8 * measure(as_voiced)[0], rel=0.05)


def test_the_utterance_festival_aborted_on_while_making_data_still_gives_its_clip(tts_engines):
    # kal, sad, the lowest speaker pitch and rate: festival 2.5 ended with SIGABRT on this one, batch or alone.
    sad = tts.Prosody(pitch=0.7334, range=0.3562, rate=0.5222, volume=0.2655, ending=".")
    job = tts.Job("The recipe needs two eggs and some flour.", sad, "kal_diphone", 0.85, 0.9)
    (clip,) = tts.render("festival", [job], np.random.default_rng(0))
    assert 3.0 < len(clip) / 16_000 < 8.0 and np.abs(clip).max() > 0.1


def test_hts_speakers_made_from_its_one_voice_differ_in_pitch_and_formants_and_a_question_rises(tts_engines):
    neutral, surprise = tts.emotion_prosody("neutral"), tts.emotion_prosody("surprise")
    jobs = [tts.Job(SENTENCE, neutral, "slt", 1.0, 1.0), tts.Job(SENTENCE, neutral, "slt-deep", 1.0, 1.0),
            tts.Job(SENTENCE, replace(neutral, ending="?"), "slt", 1.0, 1.0)]
    slt, deep, question = tts.render("hts", jobs, np.random.default_rng(0))

    def centroid(x):
        spectrum = np.abs(np.fft.rfft(x))
        return float(np.sum(spectrum * np.fft.rfftfreq(len(x), 1 / 16_000)) / np.sum(spectrum))

    assert measure(deep)[0] < 0.7 * measure(slt)[0]  # slt-deep: F0 x0.6
    assert centroid(deep) < 0.95 * centroid(slt)     # and its envelope warped down

    assert final_rise(question) > final_rise(slt) + 3
    assert surprise.ending == "?"


def test_the_italian_voices_speak_every_sentence_of_the_data_and_the_check_as_a_question(tts_engines):
    from ser_train import tts_check

    # Their own question intonation aborts festival on 8 sentences in 56 (SIOD "wrong type of argument to get_c_val").
    question = replace(tts.emotion_prosody("neutral"), ending="?")
    jobs = [tts.Job(text, question, voice, 1.0, 1.0) for text in tts.SENTENCES + tts_check.SENTENCES for voice in ("lp", "pc")]
    clips = tts.render("accented", jobs, np.random.default_rng(0))
    assert len(clips) == len(jobs) and all(len(x) > 16_000 and np.abs(x).max() > 0.1 for x in clips)


def test_the_czech_finnish_and_russian_voices_speak_every_sentence_at_their_own_pitch(tts_engines):
    from ser_train import tts_check

    neutral = tts.emotion_prosody("neutral")
    jobs = [tts.Job(text, neutral, voice, 1.0, 1.0) for text in tts.SENTENCES + tts_check.SENTENCES
            for voice in tts.ACCENTED2_VOICES]
    clips = tts.render("accented2", jobs, np.random.default_rng(0))
    assert len(clips) == len(jobs) and all(len(x) > 16_000 and np.abs(x).max() > 0.1 for x in clips)
    median = {voice: np.median([np.median(voiced_f0(x)) for x, j in list(zip(clips, jobs))[: 3 * len(tts.ACCENTED2_VOICES)]
                                if j.voice == voice]) for voice in tts.ACCENTED2_VOICES}  # three sentences each
    # the woman and the boy are the high voices this engine is for; the men sit lower
    assert min(median["dita"], median["krb"]) > max(median[v] for v in ("ph", "mv", "nsh")) + 30


def test_a_finnish_voice_after_the_russian_one_in_the_same_batch_is_spoken(tts_engines):
    # In one festival process, lj after nsh aborts on these sentences ("Phone S does not have feature csoft").
    neutral = tts.emotion_prosody("neutral")
    jobs = [tts.Job("The report has twelve pages and two tables.", neutral, "nsh", 1.0, 1.0),
            tts.Job("She parked the car next to the old garage.", neutral, "lj", 1.0, 1.0)]
    clips = tts.render("accented2", jobs, np.random.default_rng(0))
    assert len(clips) == 2 and all(len(x) > 16_000 and np.abs(x).max() > 0.1 for x in clips)
    chunks = tts._festival_chunks("accented2", jobs * 30, [Path(f"{i}.wav") for i in range(60)])
    assert [len(chunk_jobs) for chunk_jobs, _ in chunks] == [30, 30]  # one voice per process
    assert {job.voice for job in chunks[0][0]} == {"lj"} and {job.voice for job in chunks[1][0]} == {"nsh"}
    assert chunks[0][1][:2] == [Path("1.wav"), Path("3.wav")]  # each clip still goes to its own path


def test_synth_takes_the_training_speakers_range_in_multipliers_or_in_semitones(monkeypatch, tmp_path):
    import ser_train.dataset
    from ser_serve.cli import main

    asked = []
    monkeypatch.setattr(ser_train.dataset, "write_synthetic_dataset", lambda *a, **kw: asked.append(kw) or {})
    base = ["synth", "--out", str(tmp_path), "--generators", "flite"]
    main(base)
    main(base + ["--tts-train-speaker-pitch", "0.7", "1.4"])
    main(base + ["--tts-train-speaker-semitones", "-9", "9"])
    assert asked == [{}, {"tts_train_speaker_pitch": tts.SpeakerPitch(0.7, 1.4)},
                     {"tts_train_speaker_pitch": tts.SpeakerPitch.semitones(-9, 9)}]
    with pytest.raises(SystemExit):  # one range or the other
        main(base + ["--tts-train-speaker-pitch", "0.7", "1.4", "--tts-train-speaker-semitones", "-9", "9"])
