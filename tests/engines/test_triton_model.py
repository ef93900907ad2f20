"""The Triton adapter in-process, with a stand-in for the backend's ``triton_python_backend_utils``.

The stand-in only carries requests and responses; the real backend runs in
tests/integration/test_triton.py. Also: the repository builder's files.
"""

import json
import sys
import types

import numpy as np
import pytest
import yaml

from conftest import two_speaker_call
from ser_serve.engines.triton import model as adapter
from ser_serve.engines.triton.repository import build_repository, config_pbtxt
from ser_serve.errors import InvalidCheckpoint, InvalidSettings
from ser_serve.model.calibration import voice
from ser_serve.packaging import DEFAULT_MODEL_CONFIG
from ser_tools.encode import encode


class FakeTensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


class FakeError:
    INVALID_ARG, UNAVAILABLE, INTERNAL = "INVALID_ARG", "UNAVAILABLE", "INTERNAL"

    def __init__(self, message, code):
        self.message, self.code = message, code


class FakeResponse:
    def __init__(self, tensors=(), error=None):
        self.tensors, self.error = {t.name: t.array for t in tensors}, error


class FakeMetric:
    def __init__(self):
        self.value = 0

    def increment(self, value):
        self.value += value

    def set(self, value):
        self.value = value


class FakeFamily:
    COUNTER, GAUGE = "counter", "gauge"

    def __init__(self, name, description, kind):
        self.metrics = {}

    def Metric(self, labels):
        return self.metrics.setdefault(tuple(sorted(labels.items())), FakeMetric())


@pytest.fixture
def pb_utils(monkeypatch):
    fake = types.SimpleNamespace(
        Tensor=FakeTensor, TritonError=FakeError, InferenceResponse=lambda output_tensors=(), error=None:
        FakeResponse(output_tensors, error), MetricFamily=FakeFamily,
        get_input_tensor_by_name=lambda request, name: request.get(name),
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    return fake


@pytest.fixture
def repository(tiny_checkpoint, tmp_path):
    return build_repository(tiny_checkpoint, tmp_path / "repository")


def loaded_model(repository, pb_utils):
    model = adapter.TritonPythonModel()
    model.initialize({"model_repository": str(repository / "ser"), "model_version": "1", "model_name": "ser",
                      "model_instance_kind": "CPU", "model_instance_device_id": "0"})
    return model


def request(data):
    return {"AUDIO": FakeTensor("AUDIO", np.array([[data]], dtype=np.object_))}


def test_a_batch_answers_each_request_alone_and_fails_only_the_bad_one(repository, pb_utils, classifier):
    model = loaded_model(repository, pb_utils)
    clips = [encode(voice(1.0 + 0.1 * i, 16_000, seed=i), 16_000, "wav") for i in range(3)]
    responses = model.execute([request(clips[0]), request(b"garbage"), request(clips[1]), request(clips[2])])
    assert [r.error is None for r in responses] == [True, False, True, True]
    bad = responses[1].error
    assert bad.code == "INVALID_ARG" and json.loads(bad.message)["error"]["code"] == "unsupported_media_type"
    for clip, response in zip(clips, (responses[0], responses[2], responses[3])):
        expected = classifier.predict(clip)  # alone: the batch changes nothing beyond float rounding
        answer = json.loads(response.tensors["RESULT"][0, 0])
        assert answer["dominant"]["label"] == expected["dominant"]["label"]
        scores = {r["label"]: r["score"] for r in answer["results"]}
        alone = {r["label"]: r["score"] for r in expected["results"]}
        probabilities = response.tensors["PROBABILITIES"][0]
        # PROBABILITIES are exactly the answer's JSON scores, in label-id order...
        np.testing.assert_array_equal(probabilities, np.array([scores[label] for label in classifier.labels], np.float32))
        # ...and within 1e-6 of the clip's answer alone.
        assert np.abs(probabilities - np.array([alone[label] for label in classifier.labels])).max() <= 1e-6
    # The clips of different lengths shared one padded forward pass: the exact batch path ran.
    assert model.classifier.model.padded_passes >= 1
    counters = {name: metric.value for name, metric in model.metrics._counters.items()}
    assert counters["batches"] == 1 and counters["batch_requests"] == 4 and counters["decoded"] == 3


def test_two_files_in_one_request_or_text_are_refused_with_their_own_error(pb_utils):
    assert isinstance(adapter.request_upload(np.array([[b"a"], [b"b"]], dtype=np.object_)), adapter.InvalidParameter)
    assert isinstance(adapter.request_upload(np.array([["text"]], dtype=np.object_)), adapter.UnsupportedMediaType)
    assert adapter.request_upload(np.array([[b"RIFF"]], dtype=np.object_)) == b"RIFF"


@pytest.mark.parametrize("status, code", [(400, "INVALID_ARG"), (413, "INVALID_ARG"), (415, "INVALID_ARG"),
                                          (422, "INVALID_ARG"), (503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_error_codes_follow_the_project_status(status, code):
    assert adapter.error_code(status) == code


def test_an_unexpected_failure_does_not_leak_internals():
    status, message = adapter.error_message(RuntimeError("/secret/path exploded"))
    assert status == 500 and "secret" not in message and json.loads(message)["error"]["code"] == "internal_error"


def test_repository_holds_runtime_checkpoint_settings_and_labels(repository, tiny_checkpoint):
    model = repository / "ser"
    labels = json.loads((tiny_checkpoint / "config.json").read_text())["id2label"]
    assert (model / "labels.txt").read_text().split() == [labels[str(i)] for i in range(len(labels))]
    assert (model / "1" / "model.py").exists() and (model / "1" / "ser_serve" / "engines" / "triton" / "model.py").exists()
    assert (model / "1" / "ser_serve" / "worker.py").exists()
    # Runtime only: no engine of the other kind, no CLI, no tools.
    assert not (model / "1" / "ser_serve" / "engines" / "torchserve").exists()
    assert not (model / "1" / "ser_serve" / "cli.py").exists()
    assert sorted(p.name for p in (model / "checkpoint").iterdir()) == sorted(
        ["config.json", "preprocessor_config.json", "model.safetensors"])
    pinned = [line.split("==")[0] for line in (model / "requirements.txt").read_text().split()]
    assert "transformers" in pinned and "numpy" in pinned and "torch" not in pinned  # torch is the environment's


def test_config_pbtxt_takes_batching_from_the_same_defaults_as_torchserve():
    values = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    text = config_pbtxt("ser", ["a", "b"], values)
    assert f"max_batch_size: {values['batchSize']}" in text
    assert f"preferred_batch_size: [ {values['batchSize']} ]" in text
    assert f"max_queue_delay_microseconds: {int(values['maxBatchDelay'] * 1000)}" in text
    assert f"kind: KIND_CPU count: {values['minWorkers']}" in text
    assert 'data_type: TYPE_FP32 dims: [ 2 ] label_filename: "labels.txt"' in text
    assert "KIND_GPU" in config_pbtxt("ser", ["a"], values, gpu=True)


def test_precision_option_and_bad_inputs_are_checked_before_anything_is_written(tiny_checkpoint, tmp_path):
    repository = build_repository(tiny_checkpoint, tmp_path / "r", precision="int8")
    assert yaml.safe_load((repository / "ser" / "model-config.yaml").read_text())["ser"]["precision"]["profile"] == "int8"
    with pytest.raises(InvalidSettings):
        build_repository(tiny_checkpoint, tmp_path / "bad", precision="float8")
    bad_settings = tmp_path / "bad.yaml"
    bad_settings.write_text("ser:\n  batching:\n    max_padding_ration: 2\n")
    with pytest.raises(InvalidSettings, match="max_padding_ration"):
        build_repository(tiny_checkpoint, tmp_path / "bad", bad_settings)
    with pytest.raises(InvalidCheckpoint):
        build_repository(tmp_path, tmp_path / "bad")
    assert not (tmp_path / "bad" / "ser").exists()


class FakeRequest(dict):
    """A request of the backend: its input tensors, its parameters (JSON text) and its id."""

    def __init__(self, tensors, parameters="{}", request_id=""):
        super().__init__(tensors)
        self._parameters, self._id = parameters, request_id

    def parameters(self):
        return self._parameters

    def request_id(self):
        return self._id


def test_the_timeline_model_answers_each_recording_like_the_classifier_and_fails_only_the_bad_one(repository,
                                                                                                   pb_utils):
    model = adapter.TimelinePythonModel()
    model.initialize({"model_repository": str(repository / "ser-timeline"), "model_version": "1",
                      "model_name": "ser-timeline", "model_instance_kind": "CPU", "model_instance_device_id": "0"})
    call = two_speaker_call()
    separate, mixed, garbage, bad_mode = model.execute([
        FakeRequest(request(call), json.dumps({"channels": "separate"}), "call-1"),
        FakeRequest(request(call)),
        FakeRequest(request(b"garbage")),
        FakeRequest(request(call), json.dumps({"channels": "left"})),
    ])
    expected = model.classifier.timeline(call, "separate")
    assert json.loads(separate.tensors["RESULT"][0, 0]) == json.loads(json.dumps(expected))
    assert set(separate.tensors) == {"RESULT"} and {s["channel"] for s in expected["segments"]} == {0, 1}
    assert json.loads(mixed.tensors["RESULT"][0, 0])["channels"] == 1  # "mix" when no parameter says otherwise
    assert json.loads(garbage.error.message)["error"]["code"] == "unsupported_media_type"
    assert bad_mode.error.code == "INVALID_ARG" and "channels must be one of" in bad_mode.error.message
    counters = {name: metric.value for name, metric in model.metrics._counters.items()}
    assert counters["decoded"] == 2 and counters["audio"] == 20.0


@pytest.mark.parametrize("parameters, mode", [(None, "mix"), ("{}", "mix"), ('{"channels": "separate"}', "separate"),
                                              ('{"channels": "MIX"}', "mix"), ("not json", "mix")])
def test_the_channel_mode_comes_from_the_request_parameters(parameters, mode):
    assert adapter.request_channels(parameters) == mode


def test_the_repository_holds_a_timeline_model_of_one_recording_at_a_time(repository):
    model = repository / "ser-timeline"
    config = (model / "config.pbtxt").read_text()
    assert 'name: "ser-timeline"' in config and "max_batch_size: 1" in config and "PROBABILITIES" not in config
    assert "max_queue_size: 4" in config
    assert "TimelinePythonModel as TritonPythonModel" in (model / "1" / "model.py").read_text()
    assert (model / "checkpoint" / "config.json").read_bytes() == (repository / "ser" / "checkpoint" / "config.json").read_bytes()
    assert (model / "model-config.yaml").read_text() == (repository / "ser" / "model-config.yaml").read_text()


def test_a_repository_built_without_the_timeline_has_no_stale_timeline_model(tiny_checkpoint, tmp_path):
    repository = build_repository(tiny_checkpoint, tmp_path / "r")
    assert (repository / "ser-timeline").is_dir()
    build_repository(tiny_checkpoint, repository, timeline=False)
    assert (repository / "ser").is_dir() and not (repository / "ser-timeline").exists()
