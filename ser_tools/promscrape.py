"""Scrape TorchServe's Prometheus endpoint during a run and summarise the server's view."""

from __future__ import annotations

import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

# Series the summary reports (sums over label sets of the model under test).
# Names without the "_total" that the parser adds to every counter sample.
SERVER_SERIES = (
    "ts_inference_requests",
    "ts_queue_latency_microseconds",
    "ts_inference_latency_microseconds",
    "SerDecodeMs",
    "SerDecodedRequests",
    "SerAudioSeconds",
    "SerBatches",
    "SerBatchFill",
    "SerRejectedRequests",
)


def scrape(metrics_url: str, model: str, timeout: float = 5.0) -> dict[str, float]:
    """Current values of :data:`SERVER_SERIES` for ``model`` (summed over other labels)."""
    text = requests.get(f"{metrics_url.rstrip('/')}/metrics", timeout=timeout).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            labels = sample.labels
            if name in SERVER_SERIES and model in (labels.get("model_name"), labels.get("ModelName")):
                values[name] = values.get(name, 0.0) + sample.value
    return values


class MetricsRecorder:
    """Scrapes every ``interval`` seconds in a background thread until stopped."""

    def __init__(self, metrics_url: str, model: str, interval: float = 2.0):
        self.metrics_url, self.model, self.interval = metrics_url, model, interval
        self.samples: list[tuple[float, dict]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            try:
                self.samples.append((time.time(), scrape(self.metrics_url, self.model)))
            except (requests.RequestException, ValueError):
                self.errors += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=10)
        try:  # one last look after the run
            self.samples.append((time.time(), scrape(self.metrics_url, self.model)))
        except (requests.RequestException, ValueError):
            self.errors += 1

    def summary(self) -> dict:
        """Deltas over the run: requests, mean queue and inference latency, handler means."""
        if len(self.samples) < 2:
            return {"scrapes": len(self.samples), "scrape_errors": self.errors}
        first, last = self.samples[0][1], self.samples[-1][1]
        delta = {name: last.get(name, 0.0) - first.get(name, 0.0) for name in SERVER_SERIES}
        requests_ = delta["ts_inference_requests"] or None
        decoded = delta["SerDecodedRequests"] or None
        return {
            "scrapes": len(self.samples),
            "scrape_errors": self.errors,
            "inference_requests": delta["ts_inference_requests"],
            "mean_queue_ms": delta["ts_queue_latency_microseconds"] / 1000 / requests_ if requests_ else None,
            "mean_inference_ms": delta["ts_inference_latency_microseconds"] / 1000 / requests_ if requests_ else None,
            "mean_decode_ms": delta["SerDecodeMs"] / decoded if decoded else None,
            "audio_seconds": delta["SerAudioSeconds"],
            "rejected": delta["SerRejectedRequests"],
            "mean_batch_requests": (delta["SerDecodedRequests"] + delta["SerRejectedRequests"]) / delta["SerBatches"]
            if delta["SerBatches"] else None,
            "queue_ms_over_time": _queue_series(self.samples),
        }


def _queue_series(samples) -> list[tuple[float, float | None]]:
    """Mean queue latency (ms) per scrape interval: the server's view of load over time."""
    series = []
    start = samples[0][0]
    for (t0, a), (t1, b) in zip(samples, samples[1:]):
        n = b.get("ts_inference_requests", 0) - a.get("ts_inference_requests", 0)
        q = b.get("ts_queue_latency_microseconds", 0) - a.get("ts_queue_latency_microseconds", 0)
        series.append((round(t1 - start, 2), round(q / 1000 / n, 2) if n else None))
    return series
