"""The ser: section of model-config.yaml: one model, unknown keys and bad values refused by name."""

import pytest
import yaml

from ser_serve.packaging import DEFAULT_MODEL_CONFIG
from ser_serve.errors import InvalidSettings
from ser_serve.settings import AudioLimits, BatchBudget, ServeSettings, settings_from_model_yaml


def test_shipped_model_config_is_valid_and_read_in_full():
    settings = settings_from_model_yaml(yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text()))
    assert settings.torch_threads == 2
    assert settings.limits.max_seconds == 30.0
    assert settings.batching == BatchBudget(max_batch_samples=640_000, max_padding_ratio=1.25)
    assert settings.gpu.batching.max_padding_ratio == 4.0 and settings.gpu.decode_processes == 8
    assert settings.decode_processes == 1
    assert settings.precision.profile == "float32"
    assert (settings.precision.guard.min_agreement, settings.precision.guard.max_probability_change) == (0.99, 0.02)


def test_missing_section_means_defaults():
    assert settings_from_model_yaml({}) == ServeSettings()
    assert settings_from_model_yaml(None).limits == AudioLimits()


@pytest.mark.parametrize(
    "section, message",
    [
        ({"torch_thread": 2}, r"ser\.torch_thread: unknown setting"),
        ({"batching": {"max_batch_sample": 1}}, r"ser\.batching\.max_batch_sample: unknown setting"),
        ({"gpu": {"fp_16": True}}, r"ser\.gpu\.fp_16: unknown setting"),
        ({"gpu": {"batching": {"ratio": 2}}}, r"ser\.gpu\.batching\.ratio: unknown setting"),
        ({"limits": {"max_second": 5}}, r"ser\.limits\.max_second: unknown setting"),
        ({"limits": {"max_seconds": -5}}, r"ser\.limits\.max_seconds: Input should be greater than 0 \(got -5\)"),
        ({"batching": {"max_padding_ratio": 0.5}}, r"ser\.batching\.max_padding_ratio: Input should be greater than or equal to 1"),
        ({"torch_threads": 0}, r"ser\.torch_threads: Input should be greater than 0"),
        ({"limits": {"max_bytes": "lots"}}, r"ser\.limits\.max_bytes: Input should be a valid integer"),
        ({"limits": {"min_sample_rate": 48_000, "max_sample_rate": 16_000}}, r"min_sample_rate 48000 is above max_sample_rate 16000"),
        ("fast", r"ser must be a mapping, got str"),
        ({"precision": {"profile": "fp8"}}, r"ser\.precision\.profile: Input should be 'float32', 'bfloat16', 'int8', 'float16', 'openvino' or 'auto'"),
        ({"precision": {"guard": {"min_agreement": 1.5}}}, r"ser\.precision\.guard\.min_agreement: Input should be less than or equal to 1"),
        ({"precision": {"guard": {"max_probability_change": 0}}}, r"ser\.precision\.guard\.max_probability_change: Input should be greater than 0"),
        ({"precision": {"auto_second": 5}}, r"ser\.precision\.auto_second: unknown setting"),
        # The old switch names its replacement instead of "unknown setting".
        ({"gpu": {"fp16": True}}, r"ser\.gpu: .*replaced by precision\.profile: float16"),
    ],
)
def test_bad_setting_is_refused_with_the_key_and_the_reason(section, message):
    with pytest.raises(InvalidSettings, match=message):
        settings_from_model_yaml({"ser": section}, "model-config.yaml")


def test_every_problem_is_named_at_once():
    with pytest.raises(InvalidSettings) as caught:
        settings_from_model_yaml({"ser": {"torch_thread": 2, "limits": {"max_seconds": 0}}})
    assert "ser.torch_thread" in str(caught.value) and "ser.limits.max_seconds" in str(caught.value)


def test_settings_are_frozen():
    with pytest.raises(Exception):
        ServeSettings().limits.max_seconds = 1.0
