"""Which checkpoints are served, and which are refused with a message naming the problem.

Every weight refusal is checked twice: from the file headers (what `ser-serve
archive` runs before writing a .mar) and from from_pretrained's loading info
(what a worker runs at start), so neither can let a random layer through.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ser_serve.errors import InvalidCheckpoint
from ser_serve.model.calibration import voice
from ser_serve.model.checkpoint import validate_checkpoint, weight_files
from ser_serve.model.emotion_model import EmotionModel


def edited_copy(source, tmp_path, weights=None, config=None, preprocessor=None, name="ckpt"):
    """A copy of ``source`` with its state dict, config.json or preprocessor_config.json changed by the given functions."""
    target = tmp_path / name
    shutil.copytree(source, target)
    if weights:
        state = weights(load_file(target / "model.safetensors"))
        save_file(state, target / "model.safetensors", metadata={"format": "pt"})
    for file, edit in (("config.json", config), ("preprocessor_config.json", preprocessor)):
        if edit:
            data = json.loads((target / file).read_text())
            edit(data)
            (target / file).write_text(json.dumps(data))
    return target


def refusals(checkpoint) -> tuple[str, str]:
    """The messages of the archive-time check and of the load-time check; both must refuse."""
    with pytest.raises(InvalidCheckpoint) as at_archive:
        validate_checkpoint(checkpoint)
    with pytest.raises(InvalidCheckpoint) as at_load:
        EmotionModel(checkpoint, device="cpu")  # validates the config only: the weights go through from_pretrained
    return str(at_archive.value), str(at_load.value)


def without(prefixes):
    return lambda state: {k: v for k, v in state.items() if not k.startswith(prefixes)}


def answers(checkpoint):
    model = EmotionModel(checkpoint, device="cpu")
    return model.predict_proba([model.features(voice(s, seed=i)) for i, s in enumerate((1.0, 1.2))])


def test_renamed_head_is_refused_naming_the_missing_and_the_foreign_tensors(tiny_checkpoint, tmp_path):
    def custom_head(state):  # the community Wav2Vec2ForSpeechClassification layout
        state = without(("projector", "classifier"))(state)
        state.update({"classifier.dense.weight": torch.zeros(32, 32), "classifier.dense.bias": torch.zeros(32),
                      "classifier.output.weight": torch.zeros(8, 32), "classifier.output.bias": torch.zeros(8)})
        return state

    for message in refusals(edited_copy(tiny_checkpoint, tmp_path, weights=custom_head)):
        assert ("the checkpoint has no weights for classifier.bias, classifier.weight, projector.bias, projector.weight; "
                "it carries classifier.dense.bias, classifier.dense.weight, classifier.output.bias, "
                "classifier.output.weight that Wav2Vec2ForSequenceClassification does not use: "
                "it was saved by a different model class") in message


def test_missing_projector_is_refused_not_initialised_at_random(tiny_checkpoint, tmp_path):
    for message in refusals(edited_copy(tiny_checkpoint, tmp_path, weights=without(("projector",)))):
        assert "no weights for projector.bias, projector.weight: they would be initialised at random" in message


def test_backbone_without_a_head_is_refused(tiny_checkpoint, tmp_path):
    def backbone_only(state):  # a Wav2Vec2Model save: no prefix, no head
        return {k.removeprefix("wav2vec2."): v for k, v in state.items() if k.startswith("wav2vec2.")}

    for message in refusals(edited_copy(tiny_checkpoint, tmp_path, weights=backbone_only)):
        assert "no weights for classifier.bias, classifier.weight, projector.bias, projector.weight" in message


def test_head_of_another_shape_is_refused_naming_both_shapes(tiny_checkpoint, tmp_path):
    def five_labels(state):
        state["classifier.weight"], state["classifier.bias"] = torch.zeros(5, 16), torch.zeros(5)
        return state

    for message in refusals(edited_copy(tiny_checkpoint, tmp_path, weights=five_labels)):
        assert "classifier.weight has shape [5, 16] in the checkpoint but [8, 16]" in message
        assert "classifier.bias has shape [5] in the checkpoint but [8]" in message


def test_training_only_mask_embedding_may_be_absent(tiny_checkpoint, tmp_path):
    """masked_spec_embed (SpecAugment, training only) is the allow-listed tensor: its absence changes no answer."""
    checkpoint = edited_copy(tiny_checkpoint, tmp_path, weights=without(("wav2vec2.masked_spec_embed",)))
    validate_checkpoint(checkpoint)
    np.testing.assert_array_equal(answers(checkpoint), answers(tiny_checkpoint))


def test_legacy_weight_norm_names_load_like_from_pretrained(tiny_checkpoint, tmp_path):
    """Checkpoints saved before torch's parametrized weight norm name the positional conv weight_g/weight_v."""
    def legacy(state):
        prefix = "wav2vec2.encoder.pos_conv_embed.conv."
        state[prefix + "weight_g"] = state.pop(prefix + "parametrizations.weight.original0")
        state[prefix + "weight_v"] = state.pop(prefix + "parametrizations.weight.original1")
        return state

    checkpoint = edited_copy(tiny_checkpoint, tmp_path, weights=legacy)
    validate_checkpoint(checkpoint)
    np.testing.assert_array_equal(answers(checkpoint), answers(tiny_checkpoint))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(model_type="whisper"), "model_type is 'whisper'; supported: wav2vec2, hubert, wavlm, data2vec-audio"),
        (lambda c: c.update(architectures=["Wav2Vec2ForCTC"]),
         "architectures is ['Wav2Vec2ForCTC']; AutoModelForAudioClassification builds Wav2Vec2ForSequenceClassification"),
        (lambda c: c.update(architectures=["Wav2Vec2ForSpeechClassification"]),
         "architectures is ['Wav2Vec2ForSpeechClassification']"),
        (lambda c: c.update(problem_type="regression"), "problem_type is 'regression'"),
        (lambda c: c.update(id2label={"0": "arousal"}, label2id={"arousal": 0}), "a one-output head is a regression head"),
        (lambda c: c.update(id2label={"a": "angry", "b": "happy"}), "id2label keys must be integers 0..N-1"),
        (lambda c: c.update(id2label={"0": "angry", "2": "happy"}), "id2label ids are not 0..N-1"),
        (lambda c: c.update(add_adapter=True), "add_adapter"),
        (lambda c: c.update(conv_stride=[5, 4]), "transformers cannot read config.json"),
    ],
    ids=["unsupported-model-type", "ctc-class", "custom-class", "regression", "single-output", "non-integer-ids",
         "gap-in-ids", "adapter", "inconsistent-conv-lists"],
)
def test_unservable_config_is_refused_with_a_message_naming_the_field(tiny_checkpoint, tmp_path, edit, message):
    for refusal in refusals(edited_copy(tiny_checkpoint, tmp_path, config=edit)):
        assert message in refusal


def test_other_sampling_rate_is_refused(tiny_checkpoint, tmp_path):
    checkpoint = edited_copy(tiny_checkpoint, tmp_path, preprocessor=lambda p: p.update(sampling_rate=8_000))
    for refusal in refusals(checkpoint):
        assert "sampling_rate is 8000; this server feeds 16000 Hz" in refusal


def test_sharded_checkpoint_is_served_like_the_single_file(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForAudioClassification

    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_checkpoint, sharded)
    (sharded / "model.safetensors").unlink()
    AutoModelForAudioClassification.from_pretrained(tiny_checkpoint).save_pretrained(sharded, max_shard_size="40KB")
    files = [f.name for f in weight_files(sharded)]
    assert files[0] == "model.safetensors.index.json" and len(files) > 2
    validate_checkpoint(sharded)
    np.testing.assert_array_equal(answers(sharded), answers(tiny_checkpoint))


def test_sharded_checkpoint_with_a_missing_shard_is_refused(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForAudioClassification

    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_checkpoint, sharded)
    (sharded / "model.safetensors").unlink()
    AutoModelForAudioClassification.from_pretrained(tiny_checkpoint).save_pretrained(sharded, max_shard_size="40KB")
    lost = weight_files(sharded)[-1]
    lost.unlink()
    with pytest.raises(InvalidCheckpoint, match=f"lists shards that are missing: {lost.name}"):
        validate_checkpoint(sharded)


def pickled_copy(source, tmp_path, edit=lambda state: state):
    """``source`` with its weights as pytorch_model.bin only (transformers 5 saves safetensors whatever it is asked)."""
    target = tmp_path / "bin"
    shutil.copytree(source, target)
    torch.save(edit(load_file(target / "model.safetensors")), target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()
    return target


def test_pytorch_bin_only_checkpoint_is_served_like_safetensors(tiny_checkpoint, tmp_path):
    pickled = pickled_copy(tiny_checkpoint, tmp_path)
    assert [f.name for f in weight_files(pickled)] == ["pytorch_model.bin"]
    validate_checkpoint(pickled)
    np.testing.assert_array_equal(answers(pickled), answers(tiny_checkpoint))


def test_pytorch_bin_with_a_foreign_head_is_refused_from_its_header_too(tiny_checkpoint, tmp_path):
    for message in refusals(pickled_copy(tiny_checkpoint, tmp_path, without(("projector",)))):
        assert "no weights for projector.bias, projector.weight" in message


def test_unreadable_weights_are_refused_not_crashed_on(tiny_checkpoint, tmp_path):
    checkpoint = edited_copy(tiny_checkpoint, tmp_path)
    data = (checkpoint / "model.safetensors").read_bytes()
    (checkpoint / "model.safetensors").write_bytes(data[:8] + b"{not json")
    with pytest.raises(InvalidCheckpoint, match="the weights cannot be read"):
        validate_checkpoint(checkpoint)


def test_supported_model_types_map_to_the_classes_transformers_builds():
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    from ser_serve.model.checkpoint import SUPPORTED_MODEL_TYPES

    assert {t: MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES[t] for t in SUPPORTED_MODEL_TYPES} == SUPPORTED_MODEL_TYPES


def test_sharded_pytorch_bin_checkpoint_is_served_like_safetensors(tiny_checkpoint, tmp_path):
    state = load_file(tiny_checkpoint / "model.safetensors")
    sharded = tmp_path / "bin-shards"
    shutil.copytree(tiny_checkpoint, sharded)
    (sharded / "model.safetensors").unlink()
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2 :]}
    for shard, keys in halves.items():
        torch.save({k: state[k] for k in keys}, sharded / shard)
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert [f.name for f in weight_files(sharded)] == ["pytorch_model.bin.index.json", *halves]
    validate_checkpoint(sharded)
    np.testing.assert_array_equal(answers(sharded), answers(tiny_checkpoint))
