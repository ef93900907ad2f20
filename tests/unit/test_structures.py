"""Every supported checkpoint structure is served exactly: batched == alone, and == the stock reference.

Each structure (ser_train.presets.STRUCTURES) mirrors the structural fields of
published emotion checkpoints: model_type, conv norm, stable layer norm,
weighted layer sum, preprocessing. Tiny random-init weights; each test checks
that the batch path it is about actually ran.
"""

import numpy as np
import pytest

from conftest import spy, stock_reference
from ser_serve import EmotionClassifier
from ser_serve.batching import BatchBudget, plan_groups
from ser_serve.model import forward
from ser_serve.model.calibration import voice
from ser_serve.model.checkpoint import validate_checkpoint
from ser_serve.response import schema_problems
from ser_train.presets import STRUCTURES, make_preset_checkpoint

# Within 25 % of each other: the shipped padding ratio (1.25) puts them in one padded pass.
MIXED_SECONDS = (1.0, 1.1, 1.2, 1.05)
GROUP_NORM = {"wav2vec2-base", "wav2vec2-base-weighted", "hubert-base-weighted", "wavlm-base-plus"}
STACKED_POSITIONAL_CONV = {"data2vec-audio-base"}


@pytest.fixture(scope="module", params=sorted(STRUCTURES))
def served(request, tmp_path_factory):
    """(structure name, checkpoint directory, classifier with the shipped batch budget)."""
    checkpoint = make_preset_checkpoint("tiny", tmp_path_factory.mktemp(request.param), structure=request.param)
    return request.param, checkpoint, EmotionClassifier.from_pretrained(checkpoint, device="cpu", budget=BatchBudget())


def test_structures_cover_every_supported_model_type_conv_norm_and_weighted_sum():
    from transformers import AutoConfig

    seen = set()
    for structure in STRUCTURES.values():
        config = AutoConfig.for_model(structure["model_type"], **structure["config"])
        seen.add((config.model_type, getattr(config, "feat_extract_norm", "layer"), config.use_weighted_layer_sum))
    assert {model_type for model_type, _, _ in seen} == {"wav2vec2", "hubert", "wavlm", "data2vec-audio"}
    assert {("wav2vec2", "group", True), ("wav2vec2", "layer", True), ("wav2vec2", "group", False),
            ("wav2vec2", "layer", False), ("hubert", "group", True), ("wavlm", "group", False),
            ("wavlm", "layer", True)} <= seen


def test_every_structure_passes_the_archive_time_weight_check(served):
    """The header check must accept every complete checkpoint, or published models could not be archived."""
    _, checkpoint, classifier = served
    config = validate_checkpoint(checkpoint)
    assert config["architectures"] == [type(classifier.model.model).__name__]


def test_clip_in_a_mixed_length_batch_equals_the_clip_alone(served, monkeypatch):
    name, _, classifier = served
    features = [classifier.prepare(voice(s, seed=i)) for i, s in enumerate(MIXED_SECONDS)]
    assert len(plan_groups([len(f) for f in features], classifier.model.budget)) == 1
    alone = np.stack([classifier.model.predict_proba([f])[0] for f in features])
    calls = spy(monkeypatch, forward, "padded_logits", "same_length_logits", "per_clip_conv", "zero_padded_frames")
    batched = classifier.model.predict_proba(features)
    # One padded pass for the four clips (no fallback to a pass per clip), adapted as the structure needs.
    assert calls["padded_logits"] == 1 and calls["same_length_logits"] == 0
    assert calls["per_clip_conv"] == (1 if name in GROUP_NORM else 0)
    positional_layers = classifier.model.model.config.num_conv_pos_embeddings if name in STACKED_POSITIONAL_CONV else 0
    assert calls["zero_padded_frames"] == positional_layers
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("profile", ["float32", "bfloat16"])
def test_masked_group_norm_conv_equals_the_conv_run_per_clip(served, profile):
    """The GPU's batched group-norm conv stack (statistics over each clip's own frames) == the stack run per clip."""
    import torch

    name, _, classifier = served
    if name not in GROUP_NORM:
        pytest.skip("no group-norm conv stack")
    encoder = classifier.model.model.base_model.feature_extractor
    assert encoder.maskable  # every group-norm preset has the stock shape
    clips = [torch.from_numpy(classifier.prepare(voice(s, seed=i))) for i, s in enumerate((1.0, 0.6, 1.3))]
    lengths = torch.tensor([len(c) for c in clips])
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=profile == "bfloat16"):
        masked = forward.masked_group_norm_conv(encoder.encoder, batch, lengths).float()
        per_clip = forward.per_clip_conv(encoder.encoder, batch, lengths).float()
    assert masked.shape == per_clip.shape
    scale = per_clip.abs().max()
    tolerance = 1e-5 if profile == "float32" else 2e-2  # bfloat16 keeps 8 bits of mantissa
    assert (masked - per_clip).abs().max() <= tolerance * scale
    assert per_clip[1, :, -5:].abs().max() == 0 and masked[1, :, -5:].abs().max() == 0  # the short clip's padding


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_on_a_gpu_a_mixed_batch_runs_the_masked_conv_and_equals_each_clip_alone(tmp_path, monkeypatch):
    checkpoint = make_preset_checkpoint("tiny", tmp_path, structure="wav2vec2-base")
    classifier = EmotionClassifier.from_pretrained(checkpoint, device="cuda", budget=BatchBudget())
    features = [classifier.prepare(voice(s, seed=i)) for i, s in enumerate(MIXED_SECONDS)]
    alone = np.stack([classifier.model.predict_proba([f])[0] for f in features])
    calls = spy(monkeypatch, forward, "masked_group_norm_conv", "per_clip_conv")
    batched = classifier.model.predict_proba(features)
    assert calls == {"masked_group_norm_conv": 1, "per_clip_conv": 0}
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)


def test_the_openvino_profile_exports_the_exact_padded_forward_of_every_structure(served, tmp_path_factory):
    """A mixed-length batch through the exported graph == each clip alone (within the profile's rounding)."""
    from ser_serve.model import precision
    from ser_serve.model.emotion_model import EmotionModel

    name, checkpoint, _ = served
    model = EmotionModel(checkpoint, device="cpu")
    features = [model.features(voice(s, seed=i)) for i, s in enumerate(MIXED_SECONDS)]
    reference = model.predict_proba(features)
    back = precision.apply(model, "openvino")
    passes = model.runtime.passes
    together = model.predict_proba(features)
    assert model.runtime.passes == passes + 1  # one padded pass, run by OpenVINO
    alone = np.concatenate([model.predict_proba([f]) for f in features])
    assert np.abs(together - alone).max() <= precision.PROFILES["openvino"].batch_tolerance, name
    assert np.abs(together - reference).max() <= 0.02, name  # within the guard's default bound
    back()
    assert model.runtime is None


@pytest.mark.parametrize("seconds", [0.7, 1.6])
def test_served_scores_equal_the_stock_reference(served, seconds):
    _, checkpoint, classifier = served
    samples = voice(seconds, seed=7)
    expected = stock_reference(checkpoint, samples)
    got = {r["label"]: r["score"] for r in classifier.predict(samples)["results"]}
    assert got.keys() == expected.keys()
    for label, score in expected.items():
        assert got[label] == pytest.approx(score, abs=1e-5), label
    assert max(expected.values()) - min(expected.values()) > 0.01  # the answer depends on the model


@pytest.mark.parametrize("structure", ["wav2vec2-base", "data2vec-audio-base"])
def test_stock_padded_forward_alone_would_change_answers(tmp_path, structure):
    """Why the two adaptations exist: without them, padding moves a clip's scores."""
    import torch
    from transformers import AutoModelForAudioClassification

    checkpoint = make_preset_checkpoint("tiny", tmp_path, structure=structure)
    model = AutoModelForAudioClassification.from_pretrained(checkpoint).eval()
    short, long = torch.from_numpy(voice(1.0, seed=1)), torch.from_numpy(voice(1.2, seed=2))
    batch = torch.zeros(2, len(long))
    batch[0, : len(short)], batch[1] = short, long
    mask = (batch != 0).long()
    mask[1] = 1
    with torch.no_grad():
        padded = torch.softmax(model(input_values=batch, attention_mask=mask).logits[0], -1)
        alone = torch.softmax(model(input_values=short[None]).logits[0], -1)
    assert (padded - alone).abs().max() > 1e-4


def test_multi_label_checkpoint_answers_independent_sigmoids(tmp_path, monkeypatch):
    checkpoint = make_preset_checkpoint("tiny", tmp_path, structure="wav2vec2-large-weighted",
                                        problem_type="multi_label_classification")
    classifier = EmotionClassifier.from_pretrained(checkpoint, device="cpu")
    samples = [voice(s, seed=i) for i, s in enumerate(MIXED_SECONDS)]
    answers = classifier.predict_batch(samples)
    for clip, answer in zip(samples, answers):
        expected = stock_reference(checkpoint, clip)
        assert {r["label"]: pytest.approx(expected[r["label"]], abs=1e-5) for r in answer["results"]} == {
            r["label"]: r["score"] for r in answer["results"]}
        assert schema_problems(answer, list(expected), multi_label=True) == []
        assert abs(sum(expected.values()) - 1) > 0.1  # sigmoids: the scores do not sum to 1
