"""--pitch-smoothing: label smoothing that grows with how far a speaker's pitch sits from its voice's own."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch


def test_smoothed_cross_entropy_is_cross_entropys_label_smoothing_row_by_row():
    from ser_train.train import smoothed_cross_entropy

    logits, labels = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 7, 2])
    same = smoothed_cross_entropy(logits, labels, torch.full((4,), 0.2))
    assert same.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2).item())
    smoothing = torch.tensor([0.0, 0.1, 0.5, 0.9])
    rows = [torch.nn.functional.cross_entropy(logits[i : i + 1], labels[i : i + 1], label_smoothing=float(s))
            for i, s in enumerate(smoothing)]
    assert smoothed_cross_entropy(logits, labels, smoothing).item() == pytest.approx(torch.stack(rows).mean().item())


@pytest.fixture
def pitched_dataset(small_dataset, tmp_path):
    """small_dataset's training clips with speakers pitched an octave up, an octave down, as voiced, or unknown."""
    table = pq.read_table(small_dataset["train"])
    assert table["speaker_pitch"].null_count == table.num_rows  # ser-serve synth names none for its own voice
    table = table.drop_columns(["speaker_pitch"])
    pitch = [(2.0, 0.5, 1.0, None)[i % 4] for i in range(table.num_rows)]
    pq.write_table(table.append_column("speaker_pitch", pa.array(pitch, type=pa.float64())), tmp_path / "train.parquet")
    return {"train": tmp_path / "train.parquet", "validation": small_dataset["validation"]}


def test_each_clips_smoothing_follows_its_speakers_octaves_from_the_voice(pitched_dataset, short_training, tmp_path,
                                                                          monkeypatch):
    from ser_train import train

    seen = []
    original = train.smoothed_cross_entropy

    def spy(logits, labels, smoothing, reduction="mean"):
        seen.extend(np.round(smoothing.tolist(), 6))
        return original(logits, labels, smoothing, reduction)

    monkeypatch.setattr(train, "smoothed_cross_entropy", spy)
    short_training(pitched_dataset, tmp_path / "model", "--label-smoothing", "0.1", "--pitch-smoothing", "0.3",
                   epochs=1)
    rows = pq.read_table(pitched_dataset["train"]).num_rows
    assert len(seen) == rows  # every clip of the epoch went through it
    # an octave either way: 0.1 + 0.3; as voiced, or no speaker_pitch (the synthetic voice): 0.1
    assert sorted(seen) == sorted([0.4, 0.4, 0.1, 0.1] * (rows // 4))


def test_pitch_smoothing_on_data_without_speaker_pitch_says_so(small_dataset, short_training, tmp_path):
    with pytest.raises(ValueError, match="speaker_pitch"):
        short_training(small_dataset, tmp_path / "model", "--pitch-smoothing", "0.3", epochs=1)
