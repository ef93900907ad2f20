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
