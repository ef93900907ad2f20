"""Calibration: ECE on a hand-made example, temperature fitting, and T folded into the saved checkpoint."""

import numpy as np
import pytest
from scipy.special import softmax

from calibration_sets import sampled
from ser_train import calibrate


def test_ece_of_a_hand_made_example():
    # Bins of width 1/15: 0.9 -> (0.867, 0.933], 0.55 -> (0.533, 0.6], 0.3 -> (0.267, 0.333].
    confidence = [0.9, 0.9, 0.55, 0.55, 0.3]
    correct = [True, False, True, True, False]
    # 2/5 * |0.5 - 0.9| + 2/5 * |1 - 0.55| + 1/5 * |0 - 0.3|
    assert calibrate.expected_calibration_error(confidence, correct) == pytest.approx(0.16 + 0.18 + 0.06)
    assert calibrate.expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert calibrate.expected_calibration_error([0.5] * 4, [True, False, True, False]) == pytest.approx(0.0)
    bins = calibrate.reliability_bins(confidence, correct)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 5
    assert bins[13] == {"low": 13 / 15, "high": 14 / 15, "count": 2, "accuracy": 0.5, "confidence": 0.9}


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 8))
    true_probabilities = softmax(logits / 2.5, axis=-1)  # the model is 2.5x too sure
    labels = np.array([rng.choice(8, p=p) for p in true_probabilities])
    t = calibrate.fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    assert calibrate.nll(logits, labels, t) < calibrate.nll(logits, labels)
    assert calibrate.ece_of_logits(logits, labels, t) < calibrate.ece_of_logits(logits, labels) / 3


def test_ece_bootstrap_range_narrows_and_falls_with_more_clips():
    rng = np.random.default_rng(1)
    few, many = sampled(rng, 320, 1.0), sampled(rng, 3200, 1.0)  # calibrated: the true ECE is 0
    low_few, high_few = calibrate.ece_bootstrap_interval(*few, draws=300)
    low_many, high_many = calibrate.ece_bootstrap_interval(*many, draws=300)
    assert 0 < low_few < high_few and calibrate.ece_of_logits(*few) < high_few
    assert high_many - low_many < (high_few - low_few) / 2  # about 1 / sqrt(10) as wide
    assert high_many < low_few  # the finite-set lean above 0 shrinks with more clips
    assert calibrate.ece_bootstrap_interval(*few, draws=300) == (low_few, high_few)  # seeded


def test_worst_group_temperature_fits_the_group_that_asks_for_most_not_the_pool():
    rng = np.random.default_rng(1)
    # Three groups ask for T 1.2 and one, harder, for 2.4 (and it has the larger NLL at every T near them).
    groups = [sampled(rng, 1500, 1.2) for _ in range(3)] + [sampled(rng, 1500, 2.4)]
    pooled_t = calibrate.fit_temperature(*calibrate.pooled(groups))
    worst_t = calibrate.fit_worst_group_temperature(groups)
    assert pooled_t < 1.8  # the pool is pulled towards the three
    assert worst_t == pytest.approx(calibrate.fit_temperature(*groups[-1]), rel=0.02)
    worst = lambda t: max(calibrate.nll(z, y, t) for z, y in groups)  # noqa: E731
    assert worst(worst_t) < worst(pooled_t)
    assert worst(worst_t) <= min(worst(worst_t * 0.97), worst(worst_t * 1.03))  # a minimum of the worst NLL
    # The hard group's ECE is what the rule is for: better under its T than under the pool's.
    assert calibrate.ece_of_logits(*groups[-1], worst_t) < calibrate.ece_of_logits(*groups[-1], pooled_t)
    # One group: the plain NLL fit.
    assert calibrate.fit_worst_group_temperature(groups[:1]) == pytest.approx(calibrate.fit_temperature(*groups[0]), rel=1e-3)


def test_folded_temperature_gives_softmax_of_logits_over_t_to_the_cards_reference_loader(tiny_checkpoint, tmp_path):
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from conftest import stock_reference

    audio = np.random.default_rng(3).normal(0, 0.1, 24_000).astype(np.float32)
    extractor = AutoFeatureExtractor.from_pretrained(tiny_checkpoint)
    model = AutoModelForAudioClassification.from_pretrained(tiny_checkpoint).eval()
    with torch.no_grad():
        logits = model(**extractor(audio, sampling_rate=16_000, return_tensors="pt")).logits[0].double().numpy()
    temperature = 1.7
    calibrate.fold_temperature(model, temperature)
    model.save_pretrained(tmp_path, safe_serialization=True)
    extractor.save_pretrained(tmp_path)
    reference = stock_reference(tmp_path, audio)  # AutoModelForAudioClassification from the saved files
    expected = softmax(logits / temperature)
    labels = model.config.id2label
    assert [reference[labels[i]] for i in range(len(labels))] == pytest.approx(expected, abs=1e-6)
    assert not np.allclose(expected, softmax(logits), atol=1e-3)  # T really changed the answer


def test_refold_replaces_the_folded_temperature_and_records_it(tiny_checkpoint, tmp_path):
    import json
    import shutil

    import torch
    from transformers import AutoModelForAudioClassification

    shutil.copytree(tiny_checkpoint, tmp_path / "m")
    (tmp_path / "m" / "training_log.json").write_text(json.dumps({"calibration": {"temperature": 0.8}}))
    raw = AutoModelForAudioClassification.from_pretrained(tiny_checkpoint).classifier.weight.detach().clone()
    for target in (1.5, 2.0):  # twice: the second refold starts from the first's temperature
        calibrate.refold(tmp_path / "m", target, "test")
    now = AutoModelForAudioClassification.from_pretrained(tmp_path / "m").classifier.weight.detach()
    # The copied weights had T = 0.8 folded (by the log's word): now they carry 2.0 instead.
    assert torch.allclose(now, raw * 0.8 / 2.0, atol=1e-7)
    log = json.loads((tmp_path / "m" / "training_log.json").read_text())["calibration"]
    assert log["folded_temperature"] == 2.0 and log["temperature"] == 0.8 and log["folded_temperature_source"] == "test"
