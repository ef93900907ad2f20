"""Precision profiles: each keeps batching exact within its stated rounding, the guard falls back to float32, auto picks by measurement."""

import numpy as np
import pytest
import torch

from ser_serve.model import precision
from ser_serve.model.calibration import operator_clips, voice
from ser_serve.model.emotion_model import EmotionModel
from ser_serve.settings import PrecisionGuard, PrecisionSettings


@pytest.fixture
def model(tiny_checkpoint):
    return EmotionModel(tiny_checkpoint, device="cpu")


def linear_calls(model) -> list[tuple]:
    """Records (output dtype, weight class name) of every call of the classifier head's Linear layer."""
    calls = []
    model.model.classifier.register_forward_hook(
        lambda module, args, output: calls.append((output.dtype, type(module.weight).__name__)))
    return calls


# What the intended path looks like from inside a Linear layer: autocast makes bfloat16 outputs; int8 swaps the weight.
PATH_SEEN = {"float32": (torch.float32, "Parameter"), "bfloat16": (torch.bfloat16, "Parameter"),
             "int8": (torch.float32, "Int8Tensor")}


@pytest.mark.parametrize("profile", ["float32", "bfloat16", "int8"])
def test_each_profile_answers_a_clip_in_a_padded_batch_as_alone_within_its_stated_rounding(model, profile):
    precision.apply(model, profile)
    calls = linear_calls(model)
    features = [model.features(voice(seconds, seed=seed)) for seed, seconds in enumerate((1.0, 1.1, 1.2, 0.97))]
    padded_before = model.padded_passes
    together = model.predict_proba(features)
    assert model.padded_passes == padded_before + 1  # the masked, padded path ran, not one pass per length
    alone = np.concatenate([model.predict_proba([f]) for f in features])
    assert np.abs(together - alone).max() <= precision.PROFILES[profile].batch_tolerance
    assert set(calls) == {PATH_SEEN[profile]}


@pytest.mark.parametrize("profile", ["bfloat16", "int8"])
def test_profile_within_the_guard_runs_and_reports_its_figures(model, profile):
    choice = model.use_precision(PrecisionSettings(profile=profile))
    assert (choice.profile, model.profile, choice.fell_back) == (profile, profile, False)
    guard = choice.guards[profile]
    assert guard.passed and guard.clips == 3 and guard.agreement == 1.0
    assert 0 < guard.max_change <= 0.02  # reduced precision does change the numbers, within the default bound
    calls = linear_calls(model)
    model.predict_proba([model.features(voice(1.0))])
    assert set(calls) == {PATH_SEEN[profile]}


@pytest.mark.parametrize("profile", ["bfloat16", "int8"])
def test_guard_falls_back_to_float32_when_probabilities_move_beyond_the_bound(model, profile):
    features = [model.features(voice(1.5, seed=9))]
    float32_scores = model.predict_proba(features)
    tight = PrecisionSettings(profile=profile, guard=PrecisionGuard(max_probability_change=1e-9))
    choice = model.use_precision(tight)
    assert choice.fell_back and choice.profile == model.profile == "float32"
    assert not choice.guards[profile].passed and choice.guards[profile].max_change > 1e-9
    calls = linear_calls(model)
    # float32 really runs again: the same numbers as before the trial, float32 weights back in place.
    assert np.array_equal(model.predict_proba(features), float32_scores)
    assert set(calls) == {PATH_SEEN["float32"]}


def test_guard_counts_a_changed_top_label_even_when_probabilities_barely_move():
    reference = np.array([[0.501, 0.499], [0.2, 0.8]] * 50)
    flipped = reference.copy()
    flipped[0] = [0.499, 0.501]  # 1 of 100 clips changes its label by 0.002
    result = precision.check("int8", reference, flipped, PrecisionGuard())
    assert result.agreement == 0.99 and result.passed  # at the default threshold 99 % still passes
    flipped[2] = [0.499, 0.501]
    result = precision.check("int8", reference, flipped, PrecisionGuard())
    assert result.agreement == 0.98 and result.max_change == pytest.approx(0.002) and not result.passed


def test_guard_refuses_nan_scores():
    result = precision.check("bfloat16", np.full((2, 3), 1 / 3), np.full((2, 3), np.nan), PrecisionGuard())
    assert not result.passed and result.max_change == float("inf")


def fake_timings(monkeypatch, seconds: dict):
    """Pass timings by the profile that runs: auto's decision without depending on this host's speed."""
    monkeypatch.setattr(precision, "_median_pass", lambda model, features, budget: seconds[model.profile])


def test_auto_picks_the_fastest_profile_that_passes_the_guard(model, monkeypatch):
    fake_timings(monkeypatch, {"float32": 1.0, "bfloat16": 0.5, "openvino": 0.45, "int8": 0.4})
    choice = model.use_precision(PrecisionSettings(profile="auto"))
    assert choice.profile == model.profile == "int8" and not choice.fell_back
    assert choice.speedup("int8") == 2.5 and choice.speedup("bfloat16") == 2.0
    assert choice.as_dict()["speedup_vs_float32"] == {"bfloat16": 2.0, "openvino": 1.0 / 0.45, "int8": 2.5}
    assert model.runtime is None  # the openvino candidate handed the forward back after its turn


def test_auto_never_picks_a_profile_that_failed_to_run(model, monkeypatch):
    fake_timings(monkeypatch, {"float32": 1.0, "bfloat16": 0.5, "openvino": 0.6, "int8": 0.4})

    def broken(module):
        raise RuntimeError("no int8 kernel here")

    monkeypatch.setattr(precision, "quantize_linear_int8", broken)
    choice = model.use_precision(PrecisionSettings(profile="auto"))
    assert choice.profile == "bfloat16"
    assert choice.guards["int8"].error == "RuntimeError: no int8 kernel here" and "int8" not in choice.seconds


def test_auto_keeps_float32_when_it_is_fastest_without_calling_it_a_fallback(model, monkeypatch):
    fake_timings(monkeypatch, {"float32": 0.3, "bfloat16": 0.5, "openvino": 0.45, "int8": 0.4})
    choice = model.use_precision(PrecisionSettings(profile="auto"))
    assert choice.profile == model.profile == "float32" and not choice.fell_back


def test_auto_falls_back_when_every_candidate_fails_the_guard(model, monkeypatch):
    fake_timings(monkeypatch, {"float32": 1.0, "bfloat16": 0.5, "openvino": 0.45, "int8": 0.4})
    choice = model.use_precision(PrecisionSettings(profile="auto", guard=PrecisionGuard(max_probability_change=1e-9)))
    assert choice.profile == "float32" and choice.fell_back and set(choice.guards) == {"bfloat16", "openvino", "int8"}


def test_operator_clips_join_the_guard(model, tmp_path):
    from ser_tools.encode import encode

    (tmp_path / "a.wav").write_bytes(encode(voice(1.0, 16_000, seed=3), 16_000, "wav"))
    (tmp_path / "b.flac").write_bytes(encode(voice(2.0, 44_100, seed=4), 44_100, "flac"))
    clips = operator_clips(tmp_path)
    assert [len(c) for c in clips] == [16_000, 32_000]
    choice = model.use_precision(PrecisionSettings(profile="bfloat16"), clips)
    assert choice.guards["bfloat16"].clips == 5  # 3 built-in + 2 of the operator's


def test_an_undecodable_operator_clip_is_refused_by_name(tmp_path):
    from ser_serve.errors import InvalidSettings

    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(InvalidSettings, match=r"calibration_dir: .*notes\.txt"):
        operator_clips(tmp_path)


def test_float16_on_a_cpu_is_refused_by_its_guard_and_float32_runs(model):
    choice = model.use_precision(PrecisionSettings(profile="float16"))
    assert (choice.profile, model.profile, model.dtype, choice.fell_back) == ("float32", "float32", torch.float32, True)
    assert "GPU only" in choice.guards["float16"].error
    assert "float16" not in precision.auto_candidates(model.device)  # auto does not time it on a CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float16_on_a_gpu_halves_the_weights_keeps_batches_exact_and_restores_float32_exactly(tiny_checkpoint):
    model = EmotionModel(tiny_checkpoint, device="cuda")
    weights = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    features = [model.features(voice(seconds, seed=seed)) for seed, seconds in enumerate((1.0, 1.1, 1.2, 0.97))]
    back = precision.apply(model, "float16")
    assert model.dtype == torch.float16 and next(model.model.parameters()).dtype == torch.float16
    together = model.predict_proba(features)
    alone = np.concatenate([model.predict_proba([f]) for f in features])
    assert np.abs(together - alone).max() <= precision.PROFILES["float16"].batch_tolerance
    back()
    assert all(torch.equal(tensor, weights[name]) for name, tensor in model.model.state_dict().items())
    assert "float16" in precision.auto_candidates(model.device)


def test_bfloat16_casts_the_weights_once_to_what_autocast_would_use_and_puts_float32_back(model):
    """Same scores as autocast over the float32 weights, the Linear weights really in bfloat16, float32 restored exactly."""
    features = [model.features(voice(seconds, seed=seed)) for seed, seconds in enumerate((1.0, 1.1))]
    weights = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    model.profile = "bfloat16"  # autocast alone, the float32 weights cast on every pass
    autocast_only = model.predict_proba(features)
    model.profile = "float32"
    back = precision.apply(model, "bfloat16")
    assert model.model.classifier.weight.dtype == torch.bfloat16
    np.testing.assert_array_equal(model.predict_proba(features), autocast_only)
    back()
    assert model.model.classifier.weight.dtype == torch.float32
    assert all(torch.equal(tensor, weights[name]) for name, tensor in model.model.state_dict().items())


def test_openvino_runs_the_forward_passes_and_hands_them_back(model):
    features = [model.features(voice(seconds, seed=seed)) for seed, seconds in enumerate((1.0, 1.1, 1.2, 0.97))]
    choice = model.use_precision(PrecisionSettings(profile="openvino"))
    assert (choice.profile, choice.fell_back) == ("openvino", False) and choice.guards["openvino"].passed
    calls = linear_calls(model)  # PyTorch's own layers no longer run...
    passes = model.runtime.passes
    model.predict_proba(features)
    assert calls == [] and model.runtime.passes == passes + 1  # ...one padded pass in OpenVINO does
    precision.apply(model, "float32")
    model.runtime = None
    model.predict_proba(features)
    assert calls  # PyTorch again


def test_openvino_sends_no_telemetry(tiny_checkpoint, tmp_path):
    """OpenVINO's conversion tool writes a client id under ~/intel and sends usage events unless opted out."""
    import subprocess
    import sys

    script = ("import sys; from ser_serve.model.emotion_model import EmotionModel; from ser_serve.model import precision;"
              f"m = EmotionModel({str(tiny_checkpoint)!r}, device='cpu'); precision.apply(m, 'openvino');"
              "assert m.runtime is not None; assert sys.modules['openvino_telemetry'] is None")
    done = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ, "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "intel").exists()


def test_openvino_answers_threads_calling_at_once_as_one_at_a_time(model):
    """One compiled request per worker: concurrent callers (the in-process gateway's threads) must queue for it."""
    from concurrent.futures import ThreadPoolExecutor

    precision.apply(model, "openvino")
    features = [[model.features(voice(0.8 + 0.1 * i, seed=i))] for i in range(8)]
    alone = [model.predict_proba(f) for f in features]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(model.predict_proba, features * 3))
    for got, want in zip(together, alone * 3):
        np.testing.assert_array_equal(got, want)
