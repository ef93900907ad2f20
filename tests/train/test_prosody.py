"""The auxiliary prosody targets and head (ser_train.prosody) and their use in `ser-serve train --prosody-weight`."""

import json

import numpy as np
import pytest
import torch

from ser_train import train
from ser_train.dataset import write_synthetic_dataset
from ser_train.prosody import CHANNELS, F0_CENTRE, F0_SCALE, ProsodyHead, crop_targets, frame_targets, shift_pitch

SR = 16_000


def voice(f0: float, seconds: float) -> np.ndarray:
    """A buzzy periodic tone (a few harmonics) at ``f0``."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def semitones(targets: np.ndarray) -> np.ndarray:
    voiced = targets[:, 1] > 0
    return targets[voiced, 0] * F0_SCALE + F0_CENTRE


def test_pitch_voicing_and_energy_of_a_tone_between_silences():
    rng = np.random.default_rng(0)
    silence = 1e-4 * rng.standard_normal(SR // 2).astype(np.float32)
    x = np.concatenate([silence, voice(150.0, 1.0), silence])
    targets = frame_targets(x, 320)
    assert targets.shape[1] == CHANNELS
    assert len(targets) == 1 + (len(x) - 1024) // 320
    voiced = targets[:, 1] > 0
    # The tone's frames (not the silences') are voiced, at 150 Hz: 12 log2(1.5) = 7.02 semitones re 100 Hz.
    assert voiced[30:45].all() and not voiced[:20].any() and not voiced[-20:].any()
    assert np.allclose(semitones(targets), 12 * np.log2(1.5), atol=0.2)
    assert targets[voiced, 2].min() > 0.5 > targets[:20, 2].max()  # energy: loud tone, quiet silence


def test_a_higher_voice_has_higher_pitch_targets_and_no_octave_errors():
    low, high = frame_targets(voice(110.0, 1.5), 320), frame_targets(voice(220.0, 1.5), 320)
    assert np.median(semitones(high)) - np.median(semitones(low)) == pytest.approx(12.0, abs=0.3)
    assert np.ptp(semitones(low)) < 1.0 and np.ptp(semitones(high)) < 1.0


def test_relative_pitch_is_the_contour_around_the_clips_median():
    def glide(start, end):  # a voice gliding from start to end Hz
        phase = 2 * np.pi * np.cumsum(np.geomspace(start, end, SR)) / SR
        return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)

    low, high = frame_targets(glide(100, 140), 320, relative=True), frame_targets(glide(200, 280), 320, relative=True)
    # An octave apart, the same movement: the same relative targets (absolute ones differ by 12 semitones).
    assert np.median(semitones(low)) == pytest.approx(F0_CENTRE, abs=0.01)
    assert np.allclose(semitones(low)[5:-5], semitones(high)[5:-5], atol=0.3)
    frames = len(semitones(low)) - 1  # a glide of 12 log2(1.4) = 5.8 semitones per second, 320 samples per frame
    assert semitones(low)[-1] - semitones(low)[0] == pytest.approx(12 * np.log2(1.4) * frames * 320 / SR, abs=0.3)
    absolute = frame_targets(glide(200, 280), 320)
    assert np.median(semitones(absolute)) - np.median(semitones(frame_targets(glide(100, 140), 320))) == pytest.approx(12, abs=0.3)


def test_crop_targets_follow_the_crop_and_pad_with_silence():
    targets = np.arange(20 * CHANNELS, dtype=np.float32).reshape(20, CHANNELS)
    assert np.array_equal(crop_targets(targets, 5 * 320, 4, 320), targets[5:9])
    assert np.array_equal(crop_targets(targets, 5 * 320 + 100, 4, 320), targets[5:9])  # nearest frame
    tail = crop_targets(targets, 18 * 320, 4, 320)
    assert np.array_equal(tail[:2], targets[18:]) and not tail[2:].any()


def test_head_loss_counts_pitch_on_voiced_frames_only():
    head = ProsodyHead(4)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([0.0, 20.0, 1.0]))  # pitch 0, surely voiced, energy 1
    hidden = torch.zeros(1, 3, 4)
    targets = torch.tensor([[[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [5.0, 0.0, 1.0]]])  # a wild pitch on an unvoiced frame
    unvoiced_only_wrong = head.loss(hidden, targets).item()
    targets[0, 0, 0] = 1.0  # now a voiced frame's pitch is off by 1
    assert head.loss(hidden, targets).item() - unvoiced_only_wrong == pytest.approx(0.5, abs=1e-3)  # 1^2 over 2 voiced


def test_training_with_the_prosody_loss_lowers_it_and_saves_a_plain_checkpoint(small_dataset, short_training, tmp_path):
    from transformers import Wav2Vec2ForSequenceClassification

    out = tmp_path / "model"
    summary = short_training(small_dataset, out, "--prosody-weight", "1.0")
    prosody = [epoch["prosody_loss"] for epoch in summary["history"]]
    assert prosody[-1] < prosody[0]
    # The head is not part of the checkpoint: it loads as the plain model, with no missing or unexpected keys.
    model, info = Wav2Vec2ForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert json.loads((out / "training_log.json").read_text())["args"]["prosody_weight"] == 1.0


def test_pitch_targets_follow_a_voice_shift():
    targets = frame_targets(np.concatenate([np.zeros(SR // 4, np.float32), voice(150.0, 1.0)]), 320)
    up = shift_pitch(targets, 3.0)
    voiced = targets[:, 1] > 0
    assert np.allclose(semitones(up), semitones(targets) + 3.0, atol=1e-5)
    assert np.array_equal(up[~voiced], targets[~voiced]) and np.array_equal(up[:, 1:], targets[:, 1:])
    assert shift_pitch(targets, 0.0) is targets


def test_batches_carry_each_clips_voice_shift_into_its_pitch_targets(monkeypatch):
    import random

    clips = [(np.zeros(SR, np.float32), 0, 2.0), (np.zeros(SR, np.float32), 1, 0.0)]
    targets = [np.tile(np.array([[0.5, 1.0, 1.0]], np.float32), (SR // 320 + 1, 1)) for _ in clips]
    inputs, labels, prosody, _, shifts = next(train.batches(clips, 2, SR, random.Random(0), targets, 320))
    by_label = {int(label): prosody[k] for k, label in enumerate(labels)}
    assert torch.allclose(by_label[0][:, 0], torch.tensor(0.5 + 2.0 / F0_SCALE))
    assert torch.allclose(by_label[1][:, 0], torch.tensor(0.5))
    assert {int(label): shift for label, shift in zip(labels, shifts)} == {0: 2.0, 1: 0.0}


def test_clip_measures_after_a_voice_shift_match_the_measures_of_the_shifted_clip():
    # The clip-measure loss measures each clip once, clean; a voice-shifted crop gets after_voice_shift's values.
    from ser_train.augment import shift_voice
    from ser_train.prosody_probe import MEASURES, after_voice_shift, measures_of

    clip = voice(140.0, 1.5)
    clean = np.array([measures_of(clip)])
    for semitones in (-4.0, 4.0):
        moved = dict(zip(MEASURES, after_voice_shift(clean, np.array([semitones]))[0]))
        measured = dict(zip(MEASURES, measures_of(shift_voice(clip, semitones))))
        for name in ("pitch_median", "pitch_p10", "pitch_p90"):
            assert moved[name] == pytest.approx(measured[name], abs=0.5), name
        assert moved["centroid_hz"] == pytest.approx(measured["centroid_hz"], rel=0.15)
        assert moved["pitch_range"] == clean[0, MEASURES.index("pitch_range")]
    assert np.array_equal(after_voice_shift(clean, np.array([0.0])), clean)


def test_probe_measures_follow_the_voice_and_it_scores_each_generator_held_out(tts_engines, tmp_path):
    import io

    import soundfile as sf

    from ser_train.prosody_probe import MEASURES, markdown, measures, probe

    def wav(x):
        buffer = io.BytesIO()
        sf.write(buffer, x, SR, format="WAV")
        return buffer.getvalue()

    low, high = (dict(zip(MEASURES, measures(wav(voice(f0, 1.5))))) for f0 in (110.0, 220.0))
    assert high["pitch_median"] - low["pitch_median"] == pytest.approx(12.0, abs=0.3)
    assert low["voiced_share"] > 0.9 and low["seconds"] == pytest.approx(1.5, abs=0.1)

    data = write_synthetic_dataset(tmp_path, seed=2, per_label={"train": 3, "validation": 1, "test": 1},
                                   generators=("synth", "espeak-ng"))
    result = probe(data["train"].parent, workers=1)
    rows = {r["generator"]: r for r in result["generators"]}
    assert sorted(rows) == ["espeak-ng", "synth"] and rows["espeak-ng"]["test_clips"] == 8
    assert 0.0 <= rows["espeak-ng"]["held_out_accuracy"] <= 1.0 and rows["synth"]["held_out_accuracy"] is None
    assert "| espeak-ng | 8 |" in markdown(result)


def test_clip_measure_head_reads_the_measures_from_the_mean_pooled_frames():
    from ser_train.prosody import ClipMeasureHead

    head = ClipMeasureHead(2, 2)
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(2))
        head.linear.bias.zero_()
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])  # two frames: mean (2, 1)
    assert head.loss(hidden, torch.tensor([[2.0, 1.0]])).item() == pytest.approx(0.0)
    assert head.loss(hidden, torch.tensor([[2.0, 3.0]])).item() == pytest.approx(2.0)  # (0^2 + 2^2) / 2


def test_clip_measure_head_weighs_each_measure_error():
    from ser_train.prosody import ClipMeasureHead

    head = ClipMeasureHead(2, 2, torch.tensor([1.0, 0.25]))
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(2))
        head.linear.bias.zero_()
    hidden = torch.tensor([[[2.0, 1.0]]])
    assert head.loss(hidden, torch.tensor([[2.0, 3.0]])).item() == pytest.approx(0.5)  # (0 + 0.25 * 2^2) / 2
    assert head.loss(hidden, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(2.0)  # (2^2 + 0) / 2


def test_pitch_level_weight_reaches_the_clip_measure_head(small_dataset, short_training, tmp_path, monkeypatch):
    from ser_train import prosody
    from ser_train.prosody_probe import MEASURES, PITCH_LEVEL

    built = []
    original = prosody.ClipMeasureHead.__init__

    def spy(self, hidden_size, measures, weights=None):
        original(self, hidden_size, measures, weights)
        built.append(self.weights.clone())

    monkeypatch.setattr(prosody.ClipMeasureHead, "__init__", spy)
    short_training(small_dataset, tmp_path / "model", "--measure-weight", "1.0", "--measure-pitch-level-weight", "0",
                   epochs=1)
    [weights] = built
    assert weights[PITCH_LEVEL].tolist() == [0.0, 0.0, 0.0]
    others = [i for i in range(len(MEASURES)) if i not in PITCH_LEVEL]
    assert weights[others].tolist() == [1.0] * len(others)


def test_training_with_the_clip_measure_loss_lowers_it_and_saves_a_plain_checkpoint(small_dataset, short_training,
        tmp_path):
    from transformers import Wav2Vec2ForSequenceClassification

    out = tmp_path / "model"
    summary = short_training(small_dataset, out, "--measure-weight", "1.0")
    measure = [epoch["measure_loss"] for epoch in summary["history"]]
    assert measure[-1] < measure[0]
    assert "prosody_loss" not in summary["history"][0]
    model, info = Wav2Vec2ForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))


def spy_on_voice_shifts(monkeypatch) -> list[float]:
    """Every call of ``augment.other_voice`` from now on appends the shift it drew (0 for none) to the list returned."""
    from ser_train import augment

    shifts, other_voice = [], augment.other_voice

    def spy_voice(x, rng, p, max_semitones):
        y, semitones = other_voice(x, rng, p, max_semitones)
        shifts.append(semitones)
        return y, semitones

    monkeypatch.setattr(augment, "other_voice", spy_voice)
    return shifts


def test_wider_voice_shifts_reach_the_clip_measure_targets(small_dataset, short_training, tmp_path, monkeypatch):
    from ser_train import prosody_probe

    targeted, after_voice_shift = [], prosody_probe.after_voice_shift
    shifts = spy_on_voice_shifts(monkeypatch)

    def spy_measures(rows, semitones):
        targeted.extend(semitones)
        return after_voice_shift(rows, semitones)

    monkeypatch.setattr(prosody_probe, "after_voice_shift", spy_measures)
    summary = short_training(small_dataset, tmp_path / "model", "--measure-weight", "1.0",
                             "--voice-augment", "1.0", "--voice-semitones", "4", "--epochs", "1")
    assert summary["args"]["voice_semitones"] == 4.0
    assert max(abs(s) for s in shifts) > 2.0 and max(abs(s) for s in shifts) <= 4.0
    # Every shift a training crop had reached its measure targets (the loss saw the moved pitch level).
    assert sorted(s for s in targeted if s) == sorted(s for s in shifts if s) and any(targeted)


def test_the_probes_out_of_fold_probabilities_come_from_trees_that_did_not_see_the_row():
    from ser_train.prosody_probe import classifier, out_of_fold_probabilities

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 60)
    noise = rng.normal(size=(len(y), 3))  # nothing to learn: memorised in sample, chance out of fold
    inside = (classifier().fit(noise, y).predict(noise) == y).mean()
    p = out_of_fold_probabilities(noise, y, classes=4)
    assert inside > 0.8 and (p.argmax(1) == y).mean() < 0.45
    assert np.allclose(p.sum(1), 1)
    cue = np.c_[y + rng.normal(scale=0.1, size=len(y)), noise]  # one measure tells the label
    p = out_of_fold_probabilities(cue, y, classes=5)  # a fifth label that no clip has
    assert (p.argmax(1) == y).mean() > 0.95 and not p[:, 4].any()


def test_training_with_the_probe_loss_adds_its_soft_targets_to_every_update(small_dataset, short_training, tmp_path,
        monkeypatch):
    cross_entropy, soft = torch.nn.functional.cross_entropy, []

    def counting(logits, target, *args, **kwargs):
        if target.is_floating_point():  # probabilities, not label ids: the probe's term
            assert target.shape == logits.shape and torch.allclose(target.sum(1), torch.ones(len(target)))
            soft.append(len(target))
        return cross_entropy(logits, target, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", counting)
    summary = short_training(small_dataset, tmp_path / "model", "--probe-weight", "0.5")
    assert len(soft) == summary["history"][-1]["step"] and sum(soft) == summary["train_clips"] * len(summary["history"])
    assert 0 <= summary["probe_accuracy"] <= 1


def test_voice_shifts_reach_only_the_clips_of_the_chosen_generators():
    rng = np.random.default_rng(0)
    decoded = [(voice(f0, 0.5) + 0.01 * rng.standard_normal(SR // 2).astype(np.float32), 0) for f0 in (120.0, 180.0)]
    plain_features = lambda waveform, **_: {"input_values": [waveform]}  # noqa: E731 (the extractor's call shape)
    clips = train.AugmentedClips(decoded, plain_features, 0.0, seed=0, voice_probability=1.0, voice_semitones=4.0,
                                 voice_clips=[True, False])
    draws = [[clips[i][2] for _ in range(12)] for i in range(2)]
    assert sum(s != 0 for s in draws[0]) >= 4 and draws[1] == [0.0] * 12  # other_voice shifts 7 times in 10
    assert np.array_equal(clips[1][0], decoded[1][0])  # the other generator's clip comes back as it was


def test_training_shifts_the_voices_of_the_named_generator_only_and_refuses_an_unknown_one(small_dataset, short_training,
                                                                                             tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Half the training clips relabelled as another generator's: only synth's may have their voice shifted.
    table = pq.read_table(small_dataset["train"])
    generators = ["synth" if i % 2 else "flite" for i in range(table.num_rows)]
    table = table.set_column(table.schema.get_field_index("generator"), "generator", pa.array(generators))
    pq.write_table(table, tmp_path / "train.parquet")
    data = {**small_dataset, "train": tmp_path / "train.parquet"}
    shifted = spy_on_voice_shifts(monkeypatch)  # one entry per clip offered a voice shift
    summary = short_training(data, tmp_path / "model", "--voice-augment", "1.0", "--voice-generator", "synth",
                             "--epochs", "1")
    assert summary["args"]["voice_generator"] == ["synth"]
    assert len(shifted) == generators.count("synth") > 0  # one epoch draws each clip once; flite's were not offered
    with pytest.raises(ValueError, match="hts"):
        short_training(data, tmp_path / "refused", "--voice-augment", "1.0", "--voice-generator", "hts")


def test_training_draws_a_repeated_generators_clips_that_many_times_and_refuses_an_unknown_one(small_dataset,
                                                                                                short_training, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ser_train import train

    table = pq.read_table(small_dataset["train"])
    generators = ["synth" if i % 2 else "flite" for i in range(table.num_rows)]
    table = table.set_column(table.schema.get_field_index("generator"), "generator", pa.array(generators))
    pq.write_table(table, tmp_path / "train.parquet")
    data = {**small_dataset, "train": tmp_path / "train.parquet"}
    summary = short_training(data, tmp_path / "model", "--repeat-generator", "synth=3", "--epochs", "1")
    assert summary["train_clips"] == 3 * generators.count("synth") + generators.count("flite")
    assert summary["history"][-1]["step"] == train.plan_size(range(summary["train_clips"]), 8)  # the epoch grew with it
    with pytest.raises(ValueError, match="hts"):
        short_training(data, tmp_path / "refused", "--repeat-generator", "hts=2")
    for wrong in ("synth", "synth=0", "synth=1.5", "=2"):
        with pytest.raises(SystemExit):
            train.parse_args(["--train", "t.parquet", "--preset", "tiny", "--out", "o", "--repeat-generator", wrong])
