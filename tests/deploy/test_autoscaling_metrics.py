"""The series the autoscalers query exist on a real TorchServe, as counters, under the labels the queries use."""

from __future__ import annotations

import io
import re

import pytest
import requests
import soundfile

from conftest import start_server
from deployfiles import DEPLOY, the

pytestmark = pytest.mark.integration


def autoscaler_queries() -> dict[str, str]:
    adapter = (DEPLOY / "k8s/autoscaling/prometheus-adapter-values.yaml").read_text()
    return {
        "keda": the("ScaledObject")["spec"]["triggers"][0]["metadata"]["query"],
        "kserve": the("InferenceService")["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["metric"]["query"],
        "prometheus-adapter": adapter.split("metricsQuery:", 1)[1],
    }


def exposition(text: str) -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """({metric: type}, {metric: [labels of each sample]}) from Prometheus' text format."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))
    samples: dict[str, list[dict[str, str]]] = {}
    for name, labels in re.findall(r"^([A-Za-z_:][\w:]*)\{([^}]*)\}\s+\S+$", text, flags=re.M):
        samples.setdefault(name, []).append(dict(re.findall(r'(\w+)="([^"]*)"', labels)))
    return types, samples


def test_autoscaler_queries_use_counters_that_torchserve_exports(tmp_path, tiny_checkpoint):
    from ser_serve.model.calibration import voice

    clip = io.BytesIO()
    soundfile.write(clip, voice(1.0), 16_000, format="WAV")
    with start_server(tmp_path, tiny_checkpoint) as server:
        server.wait_ready()
        for _ in range(2):  # the per-model series appear after the first request
            answer = requests.put(f"{server.inference_url}/predictions/ser", data=clip.getvalue(),
                                  headers=server.auth_headers(), timeout=60)
            assert answer.status_code == 200, answer.text
        types, samples = exposition(requests.get(f"{server.metrics_url}/metrics", timeout=10).text)
    for source, query in autoscaler_queries().items():
        for metric, selector in re.findall(r"rate\((ts_\w+)(\{[^}]*\})?\[", query):
            assert types.get(metric) == "counter", f"{source}: {metric} is not a counter TorchServe exports"
            wanted = dict(re.findall(r'(model_name)="([^"]*)"', selector))
            assert any(wanted.items() <= labels.items() for labels in samples[metric]), f"{source}: {metric}{selector}"
        assert len(re.findall(r"rate\(ts_", query)) == 2, f"{source}: expected a ratio of two rates"
