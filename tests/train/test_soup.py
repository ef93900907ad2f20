"""Model soups (ser_train.soup): the weight average of runs fine-tuned from one checkpoint with different seeds."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ser_train import soup, train
from ser_train.presets import make_preset_checkpoint


@pytest.fixture(scope="module")
def members(small_dataset, tmp_path_factory):
    """Two one-epoch runs from one tiny checkpoint, seeds 0 and 1, each calibrated (its T folded in)."""
    root = tmp_path_factory.mktemp("soup")
    start = make_preset_checkpoint("tiny", root / "start")
    outs = []
    for seed in (0, 1):
        out = root / f"seed-{seed}"
        train.train(train.parse_args([
            "--train", str(small_dataset["train"]), "--validation", str(small_dataset["validation"]),
            "--init-from", str(start), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--lr", "2e-3",
            "--warmup-steps", "2", "--crop-seconds", "1.0", "--calibration-copies", "1", "--seed", str(seed)]))
        outs.append(out)
    return outs


def raw(model_dir):
    """A checkpoint's weights with its folded temperature taken back out of the classifier."""
    weights = load_file(model_dir / "model.safetensors")
    t = json.loads((model_dir / "training_log.json").read_text())["calibration"]["temperature"]
    return {k: v * t if k.startswith("classifier.") else v for k, v in weights.items()}, t


def test_the_soup_is_the_mean_of_the_members_raw_weights_then_calibrated(members, tmp_path):
    (a, ta), (b, tb) = raw(members[0]), raw(members[1])
    assert ta != tb and not torch.equal(a["classifier.weight"], b["classifier.weight"])
    summary = soup.soup(members, tmp_path / "soup")
    mixed, t = raw(tmp_path / "soup")
    assert t == summary["calibration"]["temperature"] > 0
    for key in a:
        torch.testing.assert_close(mixed[key], (a[key] + b[key]) / 2, rtol=1e-5, atol=1e-6)
    assert summary["soup"]["seeds"] == [0, 1]
    assert summary["soup"]["member_folded_temperatures"] == [ta, tb]
    assert 0 <= summary["soup"]["val_accuracy"] <= 1
    # Calibrated as its first member was: the validation clips plus one augmented copy of each.
    assert summary["calibration"]["clips"] == 2 * summary["validation_clips"] == 2 * 8
    # Any loader gets the soup: the card's reference code loads it as it loads a trained checkpoint.
    from transformers import AutoModelForAudioClassification

    assert AutoModelForAudioClassification.from_pretrained(tmp_path / "soup").config.id2label == \
        AutoModelForAudioClassification.from_pretrained(members[0]).config.id2label


def test_members_from_different_starts_are_refused(members, small_dataset, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    train.train(train.parse_args([
        "--train", str(small_dataset["train"]), "--validation", str(small_dataset["validation"]), "--preset", "tiny",
        "--out", str(scratch), "--epochs", "1", "--batch-size", "8", "--crop-seconds", "1.0", "--no-calibrate"]))
    with pytest.raises(SystemExit, match="fine-tuned from one checkpoint"):
        soup.soup([members[0], scratch], tmp_path / "mixed")
    with pytest.raises(SystemExit, match="two or more members"):
        soup.soup([members[0]], tmp_path / "one")
    with pytest.raises(SystemExit, match="must not be one of the members"):
        soup.main([str(members[0]), str(members[1]), "--out", str(members[1])])
