"""The TorchServe handler, driven in-process through TorchServe's own Context class."""

import json

import pytest
import torch
from ts.context import Context, RequestProcessor

from ser_serve.engines.torchserve import handler as ser_handler
from ser_serve.model.calibration import voice
from ser_tools.encode import encode


def make_context(mar_dir, batch_size=8, model_yaml_config=None):
    context = Context("ser", str(mar_dir), {"model": {"handler": "ser_handler.py"}}, batch_size, None, "0.12.0",
                      model_yaml_config=model_yaml_config or {"ser": {"limits": {"max_seconds": 10}}})
    return context


def set_batch(context, size):
    context.request_processor = [RequestProcessor({}) for _ in range(size)]


@pytest.fixture(scope="module")
def mar_dir(tiny_checkpoint, tmp_path_factory):
    """What TorchServe extracts from the archive: here only the checkpoint/ part matters."""
    import shutil

    root = tmp_path_factory.mktemp("mar")
    shutil.copytree(tiny_checkpoint, root / "checkpoint")
    return root


@pytest.fixture(scope="module")
def handler(mar_dir):
    service = ser_handler.SERHandler()
    service.initialize(make_context(mar_dir))
    return service


def test_bad_items_get_their_own_status_and_neighbours_succeed(handler, mar_dir, classifier):
    good_wav = encode(voice(1.0, 16_000, seed=1), 16_000, "wav")
    # 1.2 s: within the shipped padding ratio (1.25) of the wav, so the two share one padded pass.
    good_mp3 = encode(voice(1.2, 44_100, 2, seed=2), 44_100, "mp3")
    batch = [
        {"data": good_wav},
        {"body": bytearray(b"definitely not audio")},
        {"file": good_mp3},                              # multipart field
        {"body": b""},
        {"body": {"json": "object"}},                     # TorchServe decodes application/json bodies
        {"data": encode(voice(12.0, 8_000), 8_000, "flac")},  # over the 10 s limit configured above
    ]
    context = make_context(mar_dir)
    set_batch(context, len(batch))
    padded_before = handler.classifier.model.padded_passes
    responses = handler.handle(batch, context)
    statuses = [context.get_response_status(i)[0] for i in range(len(batch))]
    bodies = [json.loads(r) for r in responses]
    assert handler.classifier.model.padded_passes == padded_before + 1

    assert statuses == [200, 415, 200, 400, 415, 413]
    assert [b.get("error", {}).get("code") for b in bodies] == [
        None, "unsupported_media_type", None, "empty_input", "unsupported_media_type", "audio_too_long"]
    for body, alone in ((bodies[0], classifier.predict(good_wav)), (bodies[2], classifier.predict(good_mp3))):
        # Batched (padded with its neighbour) equals alone within float rounding.
        assert [r["label"] for r in body["results"]] == [r["label"] for r in alone["results"]]
        assert [r["score"] for r in body["results"]] == pytest.approx([r["score"] for r in alone["results"]], abs=1e-5)
    assert all(context.get_response_content_type(i) == "application/json" for i in range(len(batch)))


def test_module_entry_point_initialises_once_and_answers(mar_dir, monkeypatch):
    monkeypatch.setattr(ser_handler, "_service", ser_handler.SERHandler())
    context = make_context(mar_dir)
    assert ser_handler.handle(None, context) is None  # TorchServe's initialisation call
    set_batch(context, 1)
    (answer,) = ser_handler.handle([{"data": encode(voice(0.5), 16_000, "ogg")}], context)
    body = json.loads(answer)
    assert len(body["results"]) == 8
    assert sum(r["score"] for r in body["results"]) == pytest.approx(1.0, abs=1e-5)


def test_inference_failure_answers_every_valid_item_with_json_error(handler, mar_dir, monkeypatch):
    def broken(features):
        raise RuntimeError("simulated kernel failure")

    monkeypatch.setattr(handler.classifier.model, "_one_pass", broken)
    context = make_context(mar_dir)
    set_batch(context, 2)
    responses = handler.handle([{"data": encode(voice(0.5), 16_000, "wav")}, {"data": b"junk"}], context)
    assert [context.get_response_status(i)[0] for i in range(2)] == [500, 415]
    assert json.loads(responses[0])["error"]["code"] == "internal_error"


def test_a_forward_pass_that_runs_out_of_memory_fails_only_its_own_clips(handler, mar_dir, monkeypatch):
    import torch

    model = handler.classifier.model
    one_pass = model._one_pass
    passes = []

    def out_of_memory_for_long_clips(features):
        passes.append(len(features))
        if max(len(f) for f in features) > 3 * 16_000:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return one_pass(features)

    monkeypatch.setattr(model, "_one_pass", out_of_memory_for_long_clips)
    context = make_context(mar_dir)
    set_batch(context, 3)
    # 1.0 s and 1.1 s share a pass; 4 s is more than 1.25x longer: a pass of its own.
    clips = [encode(voice(seconds, seed=i), 16_000, "wav") for i, seconds in enumerate((1.0, 4.0, 1.1))]
    responses = handler.handle([{"data": clip} for clip in clips], context)
    assert sorted(passes) == [1, 2]
    assert [context.get_response_status(i)[0] for i in range(3)] == [200, 503, 200]
    assert json.loads(responses[1])["error"]["code"] == "out_of_memory"
    assert json.loads(responses[0])["dominant"]["score"] > 0 and json.loads(responses[2])["dominant"]["score"] > 0


def test_a_request_with_non_finite_scores_gets_its_own_500_and_its_neighbour_its_answer(handler, mar_dir, monkeypatch):
    import numpy as np

    labels = len(handler.classifier.labels)

    def half_broken(features):
        rows = np.full((len(features), labels), 1.0 / labels, dtype=np.float32)
        rows[0, 0] = np.nan
        return rows

    monkeypatch.setattr(handler.classifier.model, "_one_pass", half_broken)
    context = make_context(mar_dir)
    set_batch(context, 2)
    clip = encode(voice(0.5), 16_000, "wav")
    responses = handler.handle([{"data": clip}, {"data": clip}], context)
    assert [context.get_response_status(i)[0] for i in range(2)] == [500, 200]
    assert json.loads(responses[0])["error"]["code"] == "non_finite_scores"
    assert "NaN" not in responses[0] and json.loads(responses[1])["dominant"]["score"] > 0


def test_unknown_limit_in_model_config_fails_initialisation(mar_dir):
    with pytest.raises(ValueError, match="max_secs"):
        ser_handler.SERHandler().initialize(make_context(mar_dir, model_yaml_config={"ser": {"limits": {"max_secs": 1}}}))


def test_handler_emits_decode_audio_batch_and_rejection_metrics(mar_dir, caplog):
    """Metrics go through TorchServe's real metric cache, which logs them for the frontend to export."""
    import logging
    from pathlib import Path

    import ts
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    cache.initialize_cache()
    context = make_context(mar_dir, batch_size=4)
    context.metrics = cache
    context.model_name = "ser"
    service = ser_handler.SERHandler()
    service.initialize(context)
    set_batch(context, 2)
    with caplog.at_level(logging.INFO):
        service.handle([{"data": encode(voice(1.5), 16_000, "wav")}, {"data": b"junk"}], context)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]")]
    by_name = {line.split("[METRICS]")[1].split(".")[0]: line for line in lines}
    assert {"SerDecodeMs", "SerDecodedRequests", "SerAudioSeconds", "SerRejectedRequests", "SerBatches",
            "SerBatchFill"} <= set(by_name)
    assert ":1.5|" in by_name["SerAudioSeconds"]
    assert ":50.0|" in by_name["SerBatchFill"]  # 2 requests of a batch size of 4
    assert "Code:unsupported_media_type" in by_name["SerRejectedRequests"]


def test_worker_refuses_a_misspelt_setting_by_name(mar_dir):
    from ser_serve.errors import InvalidSettings

    service = ser_handler.SERHandler()
    with pytest.raises(InvalidSettings, match=r"ser\.batching\.max_padding_ration: unknown setting"):
        service.initialize(make_context(mar_dir, model_yaml_config={"ser": {"batching": {"max_padding_ration": 2}}}))
    assert not service.initialized


def test_worker_measures_exact_batching_at_start_and_keeps_its_budget(mar_dir, caplog):
    service = ser_handler.SERHandler()
    with caplog.at_level("INFO"):
        service.initialize(make_context(mar_dir))
    assert service.classifier.model.budget.max_padding_ratio == 1.25
    assert "padded batch vs alone" in caplog.text and "ERROR" not in caplog.text


def test_worker_batches_identical_lengths_only_when_a_padded_pass_is_not_exact(mar_dir, caplog, monkeypatch):
    """What a transformers upgrade that broke the masked forward would do: the worker notices and stops padding."""
    from ser_serve.model import forward

    exact = forward.padded_logits
    monkeypatch.setattr(forward, "padded_logits", lambda model, clips: exact(model, clips) + 0.1 * torch.arange(8.0))
    service = ser_handler.SERHandler()
    with caplog.at_level("INFO"):
        service.initialize(make_context(mar_dir))
    assert service.classifier.model.budget.max_padding_ratio == 1.0
    assert "only clips of identical length will share a forward pass" in caplog.text


def metrics_context(mar_dir, model_yaml_config):
    from pathlib import Path

    import ts
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    cache.initialize_cache()
    context = make_context(mar_dir, model_yaml_config=model_yaml_config)
    context.metrics = cache
    context.model_name = "ser"
    return context


def metric_lines(caplog) -> dict[str, list[str]]:
    lines = {}
    for record in caplog.records:
        if record.getMessage().startswith("[METRICS]"):
            lines.setdefault(record.getMessage().split("[METRICS]")[1].split(".")[0], []).append(record.getMessage())
    return lines


def test_worker_falls_back_to_float32_loudly_when_the_profile_fails_its_guard(mar_dir, caplog):
    config = {"ser": {"precision": {"profile": "bfloat16", "guard": {"max_probability_change": 1e-9}}}}
    context = metrics_context(mar_dir, config)
    service = ser_handler.SERHandler()
    with caplog.at_level("INFO"):
        service.initialize(context)
    assert service.classifier.model.profile == "float32"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["precision 'bfloat16' failed its accuracy guard: FALLING BACK TO float32"]
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "precision guard" in r.getMessage())
    assert "bfloat16 vs float32 on 3 calibration clips" in warning and "FAILED" in warning
    metrics = metric_lines(caplog)
    assert "Profile:bfloat16" in metrics["SerPrecisionFallbacks"][0] and ":1|" in metrics["SerPrecisionFallbacks"][0]
    assert "Profile:float32" in metrics["SerPrecisionRunning"][0]
    assert "Profile:bfloat16" in metrics["SerPrecisionAgreement"][0] and "SerPrecisionMaxChange" in metrics


def test_worker_runs_a_profile_that_passes_and_exports_its_figures(mar_dir, caplog):
    context = metrics_context(mar_dir, {"ser": {"precision": {"profile": "int8"}}})
    service = ser_handler.SERHandler()
    with caplog.at_level("INFO"):
        service.initialize(context)
    assert service.classifier.model.profile == "int8"
    assert "ERROR" not in caplog.text and "precision: requested int8, running int8" in caplog.text
    # The start-up exactness check ran in the profile that serves, against that profile's stated rounding.
    assert "padded batch vs alone (int8)" in caplog.text and service.classifier.model.budget.max_padding_ratio == 1.25
    metrics = metric_lines(caplog)
    assert "Profile:int8" in metrics["SerPrecisionRunning"][0] and "SerPrecisionFallbacks" not in metrics
    assert metrics["SerPrecisionAgreement"][0].startswith("[METRICS]SerPrecisionAgreement.Percent:100.0|")


def test_model_description_shows_auto_s_choice_and_figures(mar_dir, monkeypatch):
    """TorchServe's management API (GET /models/ser?customized=true) sends a request with a describe header."""
    from ser_serve.model import precision

    timings = {"float32": 1.0, "bfloat16": 0.4, "openvino": 0.8, "int8": 0.5}
    monkeypatch.setattr(precision, "_median_pass", lambda model, features, budget: timings[model.profile])
    monkeypatch.setattr(ser_handler, "_service", ser_handler.SERHandler())
    context = make_context(mar_dir, model_yaml_config={"ser": {"precision": {"profile": "auto"}}})
    assert ser_handler.handle(None, context) is None
    context.request_processor = [RequestProcessor({"describe": "True"})]
    (description,) = ser_handler.handle([{"data": None}], context)
    described = json.loads(description)["precision"]
    assert described["requested"] == "auto" and described["profile"] == "bfloat16"
    assert described["speedup_vs_float32"] == {"bfloat16": 2.5, "openvino": 1.25, "int8": 2.0}
    assert described["guard"]["int8"]["passed"] and described["guard"]["bfloat16"]["agreement"] == 1.0


def test_timeline_service_takes_the_channel_mode_from_a_header_or_a_field_and_errors_per_request(mar_dir):
    import numpy as np

    service = ser_handler.SERHandler(timeline=True)
    service.initialize(make_context(mar_dir, batch_size=1))
    call = np.zeros((16_000 * 6, 2), np.float32)
    call[16_000:48_000, 0] = voice(2.0, seed=1)
    call[64_000:80_000, 1] = voice(1.0, seed=2)
    data = encode(call, 16_000, "flac")
    requests = [{"data": data}, {"data": data}, {"file": data, "channels": bytearray(b"separate")}, {"data": data},
                {"data": b"not audio"}]
    headers = [{}, {"X-Channels": "separate"}, {}, {"x-channels": "both"}, {}]
    context = make_context(mar_dir, batch_size=len(requests))
    context.request_processor = [RequestProcessor(h) for h in headers]
    bodies = [json.loads(r) for r in service.handle(requests, context)]
    statuses = [context.get_response_status(i)[0] for i in range(len(requests))]
    assert statuses == [200, 200, 200, 400, 415]
    assert [b["channels"] for b in bodies[:3]] == [1, 2, 2]
    assert bodies[1] == bodies[2]  # header or form field: the same answer
    assert bodies[3]["error"]["code"] == "invalid_parameter"
    # The mix lane has both turns; each separate lane only its own speaker's.
    assert {s["channel"] for s in bodies[1]["segments"]} == {0, 1}
    assert bodies[0]["summary"]["speech_seconds"] == pytest.approx(3.0, abs=0.3)
