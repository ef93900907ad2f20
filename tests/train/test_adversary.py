"""The voice-generator adversary (ser_train.adversary) and `ser-serve train --adversary-weight`."""

import pyarrow.parquet as pq
import pytest
import torch

from ser_train import train
from ser_train.adversary import GeneratorAdversary, ramp, reverse_gradient


def two_generators(small_dataset, tmp_path) -> dict:
    """The small synthetic dataset with its clips said to come from two generators, alternately."""
    paths = {}
    for split in ("train", "validation"):
        table = pq.read_table(small_dataset[split])
        names = [("a", "b")[i % 2] for i in range(table.num_rows)]
        table = table.set_column(table.column_names.index("generator"), "generator", [names])
        paths[split] = tmp_path / f"{split}.parquet"
        pq.write_table(table, paths[split])
    return paths


def test_the_gradient_comes_back_reversed_and_scaled_and_the_values_pass_unchanged():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-0.5, -1.0, -2.0]))


def test_the_reversal_strength_rises_from_nothing_to_nearly_one():
    values = [ramp(p / 10) for p in range(11)]
    assert values[0] == 0.0 and values[-1] > 0.99
    assert all(a < b for a, b in zip(values, values[1:]))


def test_the_adversary_reads_the_mean_pooled_frames_and_needs_two_generators():
    adversary = GeneratorAdversary(hidden_size=4, generators=3)
    hidden = torch.randn(2, 5, 4)
    expected = adversary.net(hidden.mean(dim=1))
    assert torch.allclose(adversary.logits(hidden, 1.0), expected)
    with pytest.raises(ValueError, match="two generators"):
        GeneratorAdversary(hidden_size=4, generators=1)


def test_training_with_the_adversary_records_it_and_saves_a_plain_checkpoint(small_dataset, short_training, tmp_path,
        capsys):
    from transformers import Wav2Vec2ForSequenceClassification

    out = tmp_path / "model"
    summary = short_training(two_generators(small_dataset, tmp_path), out, "--adversary-weight", "1.0", epochs=3)
    assert "generator adversary over ['a', 'b']" in capsys.readouterr().out
    history = summary["history"]
    strengths = [epoch["adversary_strength"] for epoch in history]
    assert all(a < b for a, b in zip(strengths, strengths[1:])) and strengths[-1] > 0.99
    assert all(0.0 <= epoch["adversary_accuracy"] <= 1.0 and epoch["adversary_loss"] > 0 for epoch in history)
    model, info = Wav2Vec2ForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))


def test_an_adversary_over_one_generator_is_refused(small_dataset, short_training, tmp_path):
    with pytest.raises(ValueError, match="at least two generators"):
        short_training(small_dataset, tmp_path / "model", "--adversary-weight", "1.0")


def test_the_training_heads_read_the_last_hidden_state_even_when_layer_drop_drops_every_layer(tmp_path):
    from transformers import AutoModelForAudioClassification

    from ser_train.presets import make_preset_checkpoint

    model = AutoModelForAudioClassification.from_pretrained(make_preset_checkpoint("tiny", tmp_path, labels=["a", "b"]))
    kept = train.keep_last_hidden_state(model)
    x = torch.randn(2, 16_000)
    model.eval()
    outputs = model(input_values=x, output_hidden_states=True)
    assert torch.equal(kept["state"], outputs.hidden_states[-1])
    model.train()
    model.config.layerdrop = 1.0  # every layer dropped: output_hidden_states would give an empty tuple here
    model(input_values=x)
    assert kept["state"].shape == outputs.hidden_states[-1].shape
