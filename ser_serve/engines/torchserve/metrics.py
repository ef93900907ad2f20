"""The handler's metrics in TorchServe's metric cache."""

from __future__ import annotations


class HandlerMetrics:
    """Handler metrics in TorchServe's metric cache; the frontend exports them on its
    Prometheus endpoint (config.properties: model_metrics_auto_detect). Counters, so
    that rates and means can be derived: mean decode time = decode_ms / decoded."""

    def __init__(self, context):
        from ts.metrics.metric_type_enum import MetricTypes

        cache = getattr(context, "metrics", None)
        self.model = getattr(context, "model_name", "ser")
        self.batch_size = int(context.system_properties.get("batch_size") or 1)
        self.enabled = cache is not None
        if not self.enabled:
            return
        counter, gauge = MetricTypes.COUNTER, MetricTypes.GAUGE
        self.decode_ms = cache.add_metric_to_cache("SerDecodeMs", "ms", ["ModelName"], counter)
        self.decoded = cache.add_metric_to_cache("SerDecodedRequests", "count", ["ModelName"], counter)
        self.audio_seconds = cache.add_metric_to_cache("SerAudioSeconds", "s", ["ModelName"], counter)
        self.rejected = cache.add_metric_to_cache("SerRejectedRequests", "count", ["ModelName", "Code"], counter)
        self.batches = cache.add_metric_to_cache("SerBatches", "count", ["ModelName"], counter)
        self.batch_fill = cache.add_metric_to_cache("SerBatchFill", "percent", ["ModelName"], gauge)
        # The precision choice at worker start (ser_serve/model/precision.py): which profile runs, each
        # guard's figures, auto's measured speed-ups, and a counter that alerts on a fallback to float32.
        dims = ["ModelName", "Profile"]
        self.precision_running = cache.add_metric_to_cache("SerPrecisionRunning", "count", dims, gauge)
        self.precision_agreement = cache.add_metric_to_cache("SerPrecisionAgreement", "percent", dims, gauge)
        self.precision_change = cache.add_metric_to_cache("SerPrecisionMaxChange", "probability", dims, gauge)
        self.precision_speedup = cache.add_metric_to_cache("SerPrecisionSpeedup", "ratio", dims, gauge)
        self.precision_fallbacks = cache.add_metric_to_cache("SerPrecisionFallbacks", "count", dims, counter)

    def record_decoded(self, milliseconds: float, seconds: float) -> None:
        if self.enabled:
            self.decode_ms.add_or_update(milliseconds, [self.model])
            self.decoded.add_or_update(1, [self.model])
            self.audio_seconds.add_or_update(seconds, [self.model])

    def record_rejected(self, code: str) -> None:
        if self.enabled:
            self.rejected.add_or_update(1, [self.model, code])

    def record_batch(self, requests: int) -> None:
        if self.enabled:
            self.batches.add_or_update(1, [self.model])
            self.batch_fill.add_or_update(100.0 * requests / self.batch_size, [self.model])

    def record_precision(self, choice) -> None:
        """Export a :class:`ser_serve.model.precision.Choice`."""
        if not self.enabled:
            return
        self.precision_running.add_or_update(1, [self.model, choice.profile])
        for name, result in choice.guards.items():
            self.precision_agreement.add_or_update(100.0 * result.agreement, [self.model, name])
            # A profile that did not run at all reports 1.0, the largest change a probability can make.
            self.precision_change.add_or_update(min(result.max_change, 1.0), [self.model, name])
        for name in choice.seconds:
            if choice.speedup(name) is not None:
                self.precision_speedup.add_or_update(choice.speedup(name), [self.model, name])
        if choice.fell_back:
            self.precision_fallbacks.add_or_update(1, [self.model, choice.requested])
