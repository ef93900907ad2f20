"""Synthetic data, training and evaluation (issue: a trained demo model)."""

import json
import warnings

import numpy as np
import pytest

from ser_train import evaluate, train
from ser_train.dataset import read_examples, write_examples
from ser_train.synth import EMOTIONS, Speaker, generate, utterance


def test_generator_is_deterministic_for_a_seed():
    first = [(e, x.tobytes()) for e, x, *_ in generate(2, seed=7)]
    again = [(e, x.tobytes()) for e, x, *_ in generate(2, seed=7)]
    other = [(e, x.tobytes()) for e, x, *_ in generate(2, seed=8)]
    assert first == again
    assert first != other


def test_a_generator_made_alone_with_its_place_in_the_list_gives_the_clips_of_one_run(tmp_path):
    # What benchmarks/results/demo-recipe-accented2/append_generator.py relies on to add an engine to old data.
    from ser_train.dataset import generator_clips, split_seed, write_synthetic_dataset

    counts = {"train": 1, "validation": 1, "test": 1}
    write_synthetic_dataset(tmp_path, seed=3, per_label=counts, generators=("synth", "synth"))
    one_run = read_examples(tmp_path / "validation.parquet")
    alone = list(generator_clips("synth", "validation", split_seed(3, 1, 1), 1))
    assert [e.audio for e in one_run[len(EMOTIONS):]] == [row[0] for row, *_ in alone]  # the second generator's
    assert [e.audio for e in one_run[: len(EMOTIONS)]] != [row[0] for row, *_ in alone]


def test_generator_covers_all_labels_with_durations_of_one_to_five_seconds():
    clips = list(generate(6, seed=1))
    assert sorted({e for e, *_ in clips}) == sorted(EMOTIONS)
    for emotion, samples, seconds, speaker in clips:
        assert 1.0 <= seconds <= 5.0
        assert len(samples) == int(seconds * 16_000)
        assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


def test_prosody_follows_the_emotion_for_the_same_speaker():
    import librosa

    speaker = Speaker(base_f0=120.0, tract_scale=1.0)

    def measure(emotion):
        x = utterance(emotion, 3.0, speaker, np.random.default_rng(0), snr_db=40)
        f0 = librosa.yin(x, fmin=60, fmax=600, sr=16_000)
        return np.median(f0), np.sqrt(np.mean(x**2))

    angry_f0, angry_rms = measure("angry")
    sad_f0, sad_rms = measure("sad")
    assert angry_f0 > 1.3 * sad_f0  # angry: high pitch; sad: low
    assert angry_rms > 2 * sad_rms  # angry: loud; sad: quiet


def test_parquet_round_trip_in_the_hf_audio_layout(tmp_path):
    rows = [(b"RIFF-one", "a.wav", "happy"), (b"RIFF-two", "b.wav", "sad")]
    path = write_examples(tmp_path / "d.parquet", rows, {"split": ["train", "test"]})
    import pyarrow.parquet as pq

    assert pq.read_table(path).schema.field("audio").type.names == ["bytes", "path"]
    assert [(e.audio, e.label) for e in read_examples(path)] == [(b"RIFF-one", "happy"), (b"RIFF-two", "sad")]
    assert [e.label for e in read_examples(path, split="test")] == ["sad"]


def test_integer_labels_and_custom_column_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"speech": [{"bytes": b"x", "path": "x.wav"}], "emotion_id": [3]})
    pq.write_table(table, tmp_path / "ints.parquet")
    examples = read_examples(tmp_path / "ints.parquet", "speech", "emotion_id", id2label={3: "fear"})
    assert examples[0].label == "fear"
    with pytest.raises(ValueError, match=r"no column\(s\) \['audio', 'label'\]; it has \['speech', 'emotion_id'\]"):
        read_examples(tmp_path / "ints.parquet")


def test_integer_labels_take_the_names_of_the_files_classlabel_unless_given(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"audio": {"_type": "Audio"}, "label": {"_type": "ClassLabel", "names": ["angry", "calm", "fear"]}}
    table = pa.table({"audio": [{"bytes": b"x", "path": "x.wav"}] * 2, "label": [2, 0]})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, tmp_path / "hf.parquet")  # the layout `datasets` exports
    assert [e.label for e in read_examples(tmp_path / "hf.parquet")] == ["fear", "angry"]
    given = train.parse_args(["--train", "t", "--preset", "tiny", "--out", "o", "--label-names", "a,b,c"]).label_names
    assert [e.label for e in read_examples(tmp_path / "hf.parquet", id2label=given)] == ["c", "a"]
    with pytest.raises(ValueError, match="label 2 has no name"):
        read_examples(tmp_path / "hf.parquet", id2label={0: "angry"})
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="integer labels need an id2label mapping"):
        read_examples(tmp_path / "plain.parquet")


def test_a_pretrained_backbone_gets_a_head_for_the_datas_labels_and_its_frozen_feature_encoder_stays(
        small_dataset, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoFeatureExtractor, Wav2Vec2Model

    from ser_serve.errors import InvalidCheckpoint
    from ser_serve.model.checkpoint import validate_checkpoint
    from ser_train.presets import make_preset_checkpoint

    classifier = make_preset_checkpoint("tiny", tmp_path / "classifier", labels=["x", "y"])
    backbone = tmp_path / "backbone"  # as a self-supervised checkpoint is published: no head, no labels of ours
    Wav2Vec2Model.from_pretrained(classifier).save_pretrained(backbone)
    AutoFeatureExtractor.from_pretrained(classifier).save_pretrained(backbone)
    with pytest.raises(InvalidCheckpoint):
        validate_checkpoint(backbone)
    out = tmp_path / "model"
    args = tiny_training_args(small_dataset, out, epochs=1)
    args.preset, args.init_from, args.freeze_feature_encoder = None, backbone, True
    train.train(args)
    config = validate_checkpoint(out)
    assert sorted(config["id2label"].values()) == sorted(EMOTIONS)
    start, saved = load_file(backbone / "model.safetensors"), load_file(out / "model.safetensors")
    encoder = [k for k in start if k.startswith("feature_extractor.")]
    assert encoder and all(np.array_equal(start[k], saved[f"wav2vec2.{k}"]) for k in encoder)
    layers = [k for k in start if k.startswith("encoder.layers.")]
    assert any(not np.array_equal(start[k], saved[f"wav2vec2.{k}"]) for k in layers)


def test_a_few_training_steps_lower_the_loss_and_save_a_loadable_checkpoint(small_dataset, tmp_path):
    from ser_serve import EmotionClassifier
    from ser_serve.model.checkpoint import validate_checkpoint

    out = tmp_path / "model"
    summary = train.train(train.parse_args([
        "--train", str(small_dataset["train"]), "--validation", str(small_dataset["validation"]),
        "--preset", "tiny", "--out", str(out), "--epochs", "6", "--batch-size", "8", "--lr", "2e-3",
        "--warmup-steps", "2", "--crop-seconds", "1.0"]))
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    validate_checkpoint(out)
    classifier = EmotionClassifier.from_pretrained(out)
    assert sorted(classifier.labels) == sorted(EMOTIONS)
    log = json.loads((out / "training_log.json").read_text())
    assert log["best_val_accuracy"] == max(epoch["val_accuracy"] for epoch in log["history"])
    assert len(log["history"]) == 6


def poison_gradients(monkeypatch, steps):
    """Make the weight gradient of one convolution NaN at the given (1-based) training steps, as a bfloat16
    kernel did on an AMX CPU, before the trainer clips and checks them."""
    import torch

    clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def poisoned(parameters, *args, **kwargs):
        parameters = list(parameters)
        calls["n"] += 1
        if calls["n"] in steps:
            next(p for p in parameters if p.grad is not None and p.dim() == 3).grad.fill_(float("nan"))
        return clip(parameters, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", poisoned)


def tiny_training_args(small_dataset, out, epochs):
    return train.parse_args([
        "--train", str(small_dataset["train"]), "--validation", str(small_dataset["validation"]),
        "--preset", "tiny", "--out", str(out), "--epochs", str(epochs), "--batch-size", "8", "--lr", "2e-3",
        "--warmup-steps", "2", "--crop-seconds", "1.0", "--no-calibrate"])


def test_weight_averaging_saves_the_mean_of_the_weights_after_each_update_of_its_epochs(small_dataset, tmp_path,
                                                                                          monkeypatch):
    import torch
    from safetensors.torch import load_file

    from ser_serve import EmotionClassifier

    seen = []  # the classifier's weight as each update left it, from the averaging epoch on
    update = torch.optim.swa_utils.AveragedModel.update_parameters

    def recording(self, model):
        seen.append(model.classifier.weight.detach().clone())
        return update(self, model)

    monkeypatch.setattr(torch.optim.swa_utils.AveragedModel, "update_parameters", recording)
    out = tmp_path / "model"
    args = tiny_training_args(small_dataset, out, epochs=3)
    args.average_epochs = 2
    summary = train.train(args)
    steps_per_epoch = summary["history"][0]["step"]
    assert summary["average"]["updates"] == len(seen) == 2 * steps_per_epoch
    saved = load_file(out / "model.safetensors")["classifier.weight"]
    assert torch.allclose(saved, torch.stack(seen).mean(0), atol=1e-6)
    best = load_file(out / "best-epoch" / "model.safetensors")["classifier.weight"]
    assert not torch.allclose(saved, best)
    assert 0 <= summary["average"]["val_accuracy"] <= 1
    EmotionClassifier.from_pretrained(out)
    EmotionClassifier.from_pretrained(out / "best-epoch")


def test_weight_averaging_over_more_epochs_than_the_run_has_is_refused(small_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--train", str(small_dataset["train"]), "--preset", "tiny", "--out", str(tmp_path),
                          "--epochs", "3", "--average-epochs", "4"])
    assert "--average-epochs 4: a run of 3 epochs has not that many" in capsys.readouterr().err


def test_a_step_with_a_nan_gradient_is_skipped_and_the_saved_weights_stay_finite(small_dataset, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    poison_gradients(monkeypatch, steps={1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train.train(tiny_training_args(small_dataset, tmp_path / "model", epochs=2))
    # The schedule stepped only after updates: torch warns when it steps before the optimizer ever did.
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert summary["skipped_steps"] == 1
    assert [h["skipped_steps"] for h in summary["history"]] == [1, 1]
    assert all(np.isfinite(h["train_loss"]) for h in summary["history"])
    weights = load_file(tmp_path / "model" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_run_whose_gradients_stay_nan_stops_with_a_message_and_saves_nothing(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MAX_CONSECUTIVE_SKIPPED", 2)
    poison_gradients(monkeypatch, steps=set(range(1, 100)))
    with pytest.raises(RuntimeError, match="3 consecutive training steps had a non-finite loss or gradient"):
        train.train(tiny_training_args(small_dataset, tmp_path / "model", epochs=2))
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_evaluation_reports_accuracy_f1_and_confusion_matrix(small_dataset, tiny_checkpoint, tmp_path, monkeypatch):
    import torch

    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)  # process-wide: not changed for the other tests
    result = evaluate.evaluate(evaluate.parse_args([
        "--data", str(small_dataset["test"]), "--model-dir", str(tiny_checkpoint), "--out", str(tmp_path),
        "--threads", "1"]))
    assert set_to == [1]
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == result["examples"] == 16
    assert result["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert set(result["per_class_f1"]) == set(result["labels"])
    assert result["macro_f1"] == pytest.approx(np.mean(list(result["per_class_f1"].values())))
    assert (tmp_path / "confusion.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] == result["accuracy"]


@pytest.mark.integration
def test_evaluation_against_a_live_server_equals_in_process(small_dataset, tiny_checkpoint, server, tmp_path):
    local = evaluate.evaluate(evaluate.parse_args([
        "--data", str(small_dataset["test"]), "--model-dir", str(tiny_checkpoint), "--out", str(tmp_path / "local")]))
    remote = evaluate.evaluate(evaluate.parse_args([
        "--data", str(small_dataset["test"]), "--url", server.inference_url, f"--token={server.token()}",
        "--out", str(tmp_path / "remote")]))
    for key in ("accuracy", "macro_f1", "per_class_f1", "confusion_matrix", "labels"):
        assert remote[key] == local[key], key


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_that_would_emulate_it_is_warned_of(small_dataset, tmp_path, monkeypatch, native):
    import torch

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: native)
    args = tiny_training_args(small_dataset, tmp_path / "model", epochs=1)
    args.bf16, args.max_steps = True, 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.train(args)
    emulated = [w for w in caught if "bfloat16 is emulated" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
