import json
import shutil
import zipfile

import pytest
import torch
import yaml

from ser_serve.engines.torchserve.archive import build_archive
from ser_serve.packaging import DEFAULT_MODEL_CONFIG, runtime_requirements
from ser_train.presets import PRESETS
from ser_serve.model.checkpoint import validate_checkpoint
from ser_serve.errors import InvalidCheckpoint, InvalidSettings


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


def test_archive_is_self_contained(tiny_checkpoint, tmp_path):
    mar = build_archive(tiny_checkpoint, tmp_path / "store", "ser")
    with zipfile.ZipFile(mar) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        config = yaml.safe_load(archive.read("model-config.yaml"))
        requirements = archive.read("requirements.txt").decode()
    assert {"ser_handler.py", "ser_serve/audio/decode.py", "ser_serve/model/emotion_model.py", "checkpoint/config.json",
            "checkpoint/model.safetensors", "checkpoint/preprocessor_config.json"} <= names
    assert manifest["model"]["handler"] == "ser_handler.py"
    assert {"batchSize", "maxBatchDelay", "minWorkers", "maxWorkers"} <= config.keys()
    assert "limits" in config["ser"]
    assert requirements == runtime_requirements() and "transformers==" in requirements


def test_archive_precision_option_sets_the_profile_and_keeps_the_rest_of_the_model_config(tiny_checkpoint, tmp_path):
    mar = build_archive(tiny_checkpoint, tmp_path / "store", "ser", precision="auto")
    with zipfile.ZipFile(mar) as archive:
        config = yaml.safe_load(archive.read("model-config.yaml"))
        requirements = archive.read("requirements.txt").decode()
    shipped = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    assert config["ser"]["precision"] == {**shipped["ser"]["precision"], "profile": "auto"}
    assert {k: v for k, v in config.items() if k != "ser"} == {k: v for k, v in shipped.items() if k != "ser"}
    assert config["ser"]["limits"] == shipped["ser"]["limits"]
    assert "torchao==" in requirements  # the int8 profile's package travels with the archive's pins


def test_archive_refuses_an_unknown_precision_and_writes_nothing(tiny_checkpoint, tmp_path):
    with pytest.raises(InvalidSettings, match=r"--precision fp8: .*ser\.precision\.profile"):
        build_archive(tiny_checkpoint, tmp_path / "store", "ser", precision="fp8")
    assert not (tmp_path / "store" / "ser.mar").exists()


def test_timeline_archive_shares_the_checkpoint_and_settings_with_its_own_entry_and_batching(tiny_checkpoint, tmp_path):
    clips = build_archive(tiny_checkpoint, tmp_path / "store", "ser")
    timeline = build_archive(tiny_checkpoint, tmp_path / "store", "ser-timeline", timeline=True)
    with zipfile.ZipFile(clips) as a, zipfile.ZipFile(timeline) as b:
        assert a.read("checkpoint/model.safetensors") == b.read("checkpoint/model.safetensors")
        clip_config, timeline_config = (yaml.safe_load(z.read("model-config.yaml")) for z in (a, b))
        entry = b.read("ser_handler.py").decode()
    assert timeline_config["ser"] == clip_config["ser"] and "timeline" in timeline_config["ser"]
    assert timeline_config["batchSize"] == 1 and timeline_config["responseTimeout"] > clip_config["responseTimeout"]
    assert timeline_config["jobQueueSize"] == 4  # as Triton's ser-timeline (test_triton_model: max_queue_size 4)
    assert "handle_timeline as handle" in entry


def test_archive_carries_the_runtime_core_the_adapter_and_the_checkpoint_and_nothing_else(tiny_checkpoint, tmp_path):
    mar = build_archive(tiny_checkpoint, tmp_path / "store", "ser")
    with zipfile.ZipFile(mar) as archive:
        names = sorted(name for name in archive.namelist() if not name.endswith("/"))
    code = [name for name in names if name.endswith(".py")]
    runtime_core = {"ser_serve/__init__.py", "ser_serve/errors.py", "ser_serve/settings.py", "ser_serve/batching.py",
                    "ser_serve/response.py", "ser_serve/classifier.py", "ser_serve/vad.py", "ser_serve/timeline.py",
                    "ser_serve/worker.py", "ser_serve/decode_pool.py", "ser_serve/allocator.py"}
    adapter = {"ser_serve/engines/__init__.py", "ser_serve/engines/torchserve/__init__.py",
               "ser_serve/engines/torchserve/handler.py", "ser_serve/engines/torchserve/metrics.py"}
    packages = ("ser_serve/audio/", "ser_serve/model/")
    assert set(code) - {"ser_handler.py"} == runtime_core | adapter | {n for n in code if n.startswith(packages)}
    assert {"ser_serve/audio/decode.py", "ser_serve/model/checkpoint.py"} <= set(code)
    other = [name for name in names if not name.endswith(".py")]
    assert other == ["MAR-INF/MANIFEST.json", "checkpoint/config.json", "checkpoint/model.safetensors",
                     "checkpoint/preprocessor_config.json", "model-config.yaml", "requirements.txt"]
    for absent in ("ser_serve/cli.py", "ser_serve/engines/torchserve/archive.py", "ser_serve/engines/torchserve/server.py",
                   "ser_serve/clients/grpc.py", "ser_serve/packaging.py", "ser_serve/engines/triton/model.py", "ser_tools/bench.py", "ser_train/train.py"):
        assert absent not in names


def test_archive_entry_module_imports_the_packaged_handler(tiny_checkpoint, tmp_path):
    """TorchServe imports ser_handler.py from the extracted archive: it must find the handler there alone."""
    import subprocess
    import sys

    mar = build_archive(tiny_checkpoint, tmp_path / "store", "ser")
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(extracted)
    # The extracted folder first on sys.path, as TorchServe puts the model directory.
    # Every ser_serve module the handler pulls in must come from the archive: the development checkout's editable
    # install would otherwise supply a file the archive forgot (its finder resolves submodules by name).
    probe = ("import sys; sys.path.insert(0, '.'); import ser_handler; "
             "print(ser_handler.handle.__module__); "
             "print(*sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'ser_serve'), sep='\\n')")
    result = subprocess.run([sys.executable, "-c", probe], cwd=extracted, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module, *files = result.stdout.split("\n")
    assert module == "ser_serve.engines.torchserve.handler"
    files = [f for f in files if f]
    assert any(f.endswith("ser_serve/worker.py") for f in files)
    assert [f for f in files if not f.startswith(str(extracted))] == []


def test_misspelt_setting_is_refused_at_archive_time_and_no_archive_is_written(tiny_checkpoint, tmp_path):
    config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    config["ser"]["batching"]["max_padding_ration"] = 2.0
    path = tmp_path / "model-config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InvalidSettings, match=r"ser\.batching\.max_padding_ration: unknown setting"):
        build_archive(tiny_checkpoint, tmp_path / "store", "ser", path)
    assert not (tmp_path / "store").exists()


def test_archive_command_names_the_bad_key_and_exits_non_zero(tiny_checkpoint, tmp_path, capsys):
    from ser_serve.cli import main

    config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    config["ser"]["limits"]["max_seconds"] = -5
    path = tmp_path / "model-config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["archive", "--model-dir", str(tiny_checkpoint), "--out", str(tmp_path / "store"), "--model-config", str(path)])
    assert code == 2
    assert "ser.limits.max_seconds: Input should be greater than 0 (got -5)" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_archive_of_invalid_directory_fails_and_writes_nothing(tmp_path):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "readme.txt").write_text("hello")
    with pytest.raises(InvalidCheckpoint, match="config.json is missing"):
        build_archive(tmp_path / "not-a-model", tmp_path / "store", "ser")
    assert not (tmp_path / "store").exists()


def custom_head_checkpoint(source, tmp_path):
    """A checkpoint whose head was saved by another class (classifier.dense/classifier.output, no projector)."""
    from safetensors.torch import load_file, save_file

    checkpoint = copy_checkpoint(source, tmp_path)
    state = {k: v for k, v in load_file(checkpoint / "model.safetensors").items()
             if not k.startswith(("projector", "classifier"))}
    state.update({"classifier.dense.weight": torch.zeros(32, 32), "classifier.output.weight": torch.zeros(8, 32)})
    save_file(state, checkpoint / "model.safetensors", metadata={"format": "pt"})
    return checkpoint


def test_checkpoint_with_a_foreign_head_never_becomes_an_archive(tiny_checkpoint, tmp_path, capsys):
    from ser_serve.cli import main

    checkpoint = custom_head_checkpoint(tiny_checkpoint, tmp_path)
    with pytest.raises(InvalidCheckpoint, match="it was saved by a different model class"):
        build_archive(checkpoint, tmp_path / "store", "ser")
    code = main(["archive", "--model-dir", str(checkpoint), "--out", str(tmp_path / "store")])
    assert code == 2
    assert ("the checkpoint has no weights for classifier.bias, classifier.weight, projector.bias, projector.weight; "
            "it carries classifier.dense.weight, classifier.output.weight that Wav2Vec2ForSequenceClassification "
            "does not use") in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_serve_command_refuses_a_foreign_head_before_starting_a_server(tiny_checkpoint, tmp_path, capsys):
    from ser_serve.cli import main

    checkpoint = custom_head_checkpoint(tiny_checkpoint, tmp_path)
    code = main(["serve", "--model-dir", str(checkpoint), "--model-store", str(tmp_path / "store"),
                 "--workdir", str(tmp_path / "work")])
    assert code == 2
    assert "it was saved by a different model class" in capsys.readouterr().err
    assert not (tmp_path / "store" / "ser.mar").exists()


def archived_checkpoint_files(mar):
    with zipfile.ZipFile(mar) as archive:
        return sorted(n.removeprefix("checkpoint/") for n in archive.namelist() if n.startswith("checkpoint/") and n[-1] != "/")


def test_checkpoint_with_both_weight_formats_is_archived_with_safetensors_only(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file

    checkpoint = copy_checkpoint(tiny_checkpoint, tmp_path)
    torch.save(load_file(checkpoint / "model.safetensors"), checkpoint / "pytorch_model.bin")
    mar = build_archive(checkpoint, tmp_path / "store", "ser")
    assert archived_checkpoint_files(mar) == ["config.json", "model.safetensors", "preprocessor_config.json"]


def test_sharded_checkpoint_is_archived_with_its_index_and_every_shard(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForAudioClassification

    checkpoint = copy_checkpoint(tiny_checkpoint, tmp_path)
    (checkpoint / "model.safetensors").unlink()
    AutoModelForAudioClassification.from_pretrained(tiny_checkpoint).save_pretrained(checkpoint, max_shard_size="40KB")
    shards = json.loads((checkpoint / "model.safetensors.index.json").read_text())["weight_map"].values()
    mar = build_archive(checkpoint, tmp_path / "store", "ser")
    assert archived_checkpoint_files(mar) == sorted(
        ["config.json", "preprocessor_config.json", "model.safetensors.index.json", *set(shards)])
