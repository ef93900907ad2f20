"""--mixup: each training clip mixed with another of its batch, its losses and targets mixed alike."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ser_train.mixup import BatchMix


def test_a_rows_own_clip_dominates_and_the_mixture_is_normalised_like_served_inputs():
    rng = np.random.default_rng(0)
    inputs = torch.from_numpy(rng.normal(size=(6, 4000)).astype(np.float32) * np.arange(1, 7, dtype=np.float32)[:, None])
    mix = BatchMix(6, np.random.default_rng(1), alpha=0.4)
    assert sorted(mix.partner) == list(range(6))
    assert np.all((mix.weight >= 0.5) & (mix.weight <= 1.0))
    raw = mix.inputs(inputs, normalise=False)
    for i in range(6):
        expected = mix.weight[i] * inputs[i] + (1 - mix.weight[i]) * inputs[mix.partner[i]]
        assert torch.allclose(raw[i], expected, atol=1e-5)
    normalised = mix.inputs(inputs, normalise=True)
    assert torch.allclose(normalised.mean(1), torch.zeros(6), atol=1e-4)
    assert torch.allclose(normalised.std(1, unbiased=False), torch.ones(6), atol=1e-3)


def test_targets_and_loss_are_mixed_with_the_inputs_weights():
    mix = BatchMix(4, np.random.default_rng(2), alpha=1.0)
    measures = np.arange(12, dtype=np.float64).reshape(4, 3)
    mixed = mix.targets(measures)
    for i in range(4):
        assert mixed[i] == pytest.approx(mix.weight[i] * measures[i] + (1 - mix.weight[i]) * measures[mix.partner[i]])
    logits, labels = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 7, 2])
    loss = mix.loss(lambda rows: torch.nn.functional.cross_entropy(logits, labels[rows], reduction="none"))
    own = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    other = torch.nn.functional.cross_entropy(logits, labels[mix.partner], reduction="none")
    w = torch.from_numpy(mix.weight)
    assert loss.item() == pytest.approx((w * own + (1 - w) * other).mean().item())
    assert loss.item() != pytest.approx(own.mean().item())  # the partners' labels count


def test_training_with_mixup_mixes_every_batch_and_still_learns(small_dataset, short_training, tmp_path, monkeypatch):
    from ser_train import mixup

    mixed_rows = []
    original = mixup.BatchMix.inputs

    def spy(self, inputs, normalise):
        assert normalise  # the tiny preset's extractor normalises, as the served checkpoints' do
        mixed_rows.append(len(inputs))
        return original(self, inputs, normalise)

    monkeypatch.setattr(mixup.BatchMix, "inputs", spy)
    summary = short_training(small_dataset, tmp_path / "model", "--mixup", "0.4", "--measure-weight", "1.0",
                             "--label-smoothing", "0.1", epochs=2)
    rows = pq.read_table(small_dataset["train"]).num_rows
    assert sum(mixed_rows) == 2 * rows  # every clip of both epochs went through a mixture
    assert summary["args"]["mixup"] == 0.4
    assert all(np.isfinite(record["train_loss"]) for record in summary["history"])
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_mixup_refuses_the_losses_a_mixture_has_no_target_for():
    from ser_train import train

    for option in ("--prosody-weight", "--adversary-weight"):
        with pytest.raises(SystemExit):
            train.parse_args(["--train", "x.parquet", "--preset", "tiny", "--out", "m", "--mixup", "0.4", option, "1"])


def test_mixup_mixes_the_per_clip_smoothing_and_the_probes_belief_too(small_dataset, short_training, tmp_path,
                                                                       monkeypatch):
    """With --pitch-smoothing each row's loss is taken against its own clip and its partner (two calls a batch);
    the probe's per-clip label probabilities are mixed as the inputs are."""
    from ser_train import mixup, train

    table = pq.read_table(small_dataset["train"]).drop_columns(["speaker_pitch"])
    table = table.append_column("speaker_pitch", pa.array([(2.0, 1.0)[i % 2] for i in range(table.num_rows)]))
    pq.write_table(table, tmp_path / "train.parquet")
    data = {"train": tmp_path / "train.parquet", "validation": small_dataset["validation"]}
    calls, mixed_targets = [], []
    smoothed, targets = train.smoothed_cross_entropy, mixup.BatchMix.targets
    monkeypatch.setattr(train, "smoothed_cross_entropy",
                        lambda *a, **k: calls.append(len(a[0])) or smoothed(*a, **k))
    monkeypatch.setattr(mixup.BatchMix, "targets",
                        lambda self, values: mixed_targets.append(values.shape) or targets(self, values))
    short_training(data, tmp_path / "model", "--mixup", "0.4", "--label-smoothing", "0.1", "--pitch-smoothing", "0.3",
                   "--probe-weight", "0.5", epochs=1)
    rows = table.num_rows
    assert sum(calls) == 2 * rows  # own clip and partner, every row
    assert sum(shape[0] for shape in mixed_targets) == rows and all(shape[1] == 8 for shape in mixed_targets)
