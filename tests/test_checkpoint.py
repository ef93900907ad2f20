import json
import shutil
import zipfile

import pytest
import yaml

from ser_serve.archive import build_archive, runtime_requirements
from ser_serve.checkpoint import PRESETS, validate_checkpoint
from ser_serve.errors import InvalidCheckpoint


def copy_checkpoint(source, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(source, target)
    return target


def test_preset_checkpoint_is_valid_and_labelled(tiny_checkpoint):
    config = validate_checkpoint(tiny_checkpoint)
    assert config["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    assert list(config["id2label"].values()) == [
        "angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_base_preset_is_the_wav2vec2_base_architecture():
    from transformers import Wav2Vec2Config

    config = Wav2Vec2Config(**PRESETS["base"])
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 768, 12)
    assert config.num_feat_extract_layers == 7 and config.feat_extract_norm == "group"
    assert config.classifier_proj_size == 256


@pytest.mark.parametrize(
    "remove, message",
    [("preprocessor_config.json", "preprocessor_config.json is missing"),
     ("model.safetensors", "weights are missing"),
     ("config.json", "config.json is missing")],
)
def test_incomplete_checkpoint_error_names_what_is_missing(tiny_checkpoint, tmp_path, remove, message):
    checkpoint = copy_checkpoint(tiny_checkpoint, tmp_path)
    (checkpoint / remove).unlink()
    with pytest.raises(InvalidCheckpoint, match=message):
        validate_checkpoint(checkpoint)


def test_checkpoint_without_labels_is_refused(tiny_checkpoint, tmp_path):
    checkpoint = copy_checkpoint(tiny_checkpoint, tmp_path)
    config = json.loads((checkpoint / "config.json").read_text())
    del config["id2label"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidCheckpoint, match="no id2label"):
        validate_checkpoint(checkpoint)


def test_other_architecture_is_refused(tiny_checkpoint, tmp_path):
    checkpoint = copy_checkpoint(tiny_checkpoint, tmp_path)
    config = json.loads((checkpoint / "config.json").read_text())
    config["architectures"] = ["Wav2Vec2ForCTC"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidCheckpoint, match=r"\['Wav2Vec2ForCTC'\]; expected Wav2Vec2ForSequenceClassification"):
        validate_checkpoint(checkpoint)


def test_archive_is_self_contained(tiny_checkpoint, tmp_path):
    mar = build_archive(tiny_checkpoint, tmp_path / "store", "ser")
    with zipfile.ZipFile(mar) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        config = yaml.safe_load(archive.read("model-config.yaml"))
        requirements = archive.read("requirements.txt").decode()
    assert {"ser_handler.py", "ser_serve/audio.py", "ser_serve/model.py", "checkpoint/config.json",
            "checkpoint/model.safetensors", "checkpoint/preprocessor_config.json"} <= names
    assert manifest["model"]["handler"] == "ser_handler.py"
    assert {"batchSize", "maxBatchDelay", "minWorkers", "maxWorkers"} <= config.keys()
    assert "limits" in config["ser"]
    assert requirements == runtime_requirements() and "transformers==" in requirements


def test_archive_of_invalid_directory_fails_and_writes_nothing(tmp_path):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "readme.txt").write_text("hello")
    with pytest.raises(InvalidCheckpoint, match="config.json is missing"):
        build_archive(tmp_path / "not-a-model", tmp_path / "store", "ser")
    assert not (tmp_path / "store").exists()
