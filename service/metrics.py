"""Every Prometheus object of the service, in one place. Names: ``danmaku_<thing>_<unit>``.

Each app gets its own registry (two apps in one process, as in the tests, do not collide).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics

if TYPE_CHECKING:
    from service.model import OnnxModel
    from service.routing import RoutedBatch

# The *_created series double the exposition and no dashboard here reads them.
disable_created_metrics()

# Power-of-two buckets for counts (batch size, tokens); latency buckets from 1 ms to 10 s.
_BATCH_SIZE_BUCKETS = tuple(float(2**power) for power in range(0, 13))
_TOKEN_BUCKETS = tuple(float(2**power) for power in range(3, 18))
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """The service's metrics. ``model``, ``route``, ``status``, ``label`` and ``reason`` are labels."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_resident_memory_bytes, process_cpu_seconds_total, open fds (Linux): what a soak run watches.
        ProcessCollector(registry=r)
        self.requests = Counter(
            "danmaku_requests_total", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            "danmaku_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "danmaku_requests_in_flight", "Admitted POST /classify requests not yet answered.", registry=r
        )
        self.queue_depth = Gauge(
            "danmaku_queue_depth", "Comments waiting for a batch, per model.", ["model"], registry=r
        )
        self.queue_capacity = Gauge(
            "danmaku_queue_capacity",
            "Most comments that may wait per model (DANMAKU_MAX_QUEUE_SIZE); past it requests get 429.",
            ["model"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "danmaku_queue_wait_seconds",
            "Time a comment waited before its batch started, per model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "danmaku_batch_size_comments",
            "Comments per forward pass, per model.",
            ["model"],
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "danmaku_batch_tokens",
            "Padded tokens (comments x longest) per forward pass, per model.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.padding_ratio = Histogram(
            "danmaku_batch_padding_ratio",
            "Share of a forward pass's tokens that are padding, per model.",
            ["model"],
            buckets=_RATIO_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "danmaku_inference_duration_seconds",
            "Forward-pass time per batch, per model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_failures = Counter(
            "danmaku_batch_failures_total", "Forward passes that raised, per model.", ["model"], registry=r
        )
        self.skipped = Counter(
            "danmaku_skipped_comments_total",
            "Queued comments dropped before inference because their client went away, per model.",
            ["model"],
            registry=r,
        )
        self.predictions = Counter(
            "danmaku_predictions_total", "Final labels returned, by label.", ["label"], registry=r
        )
        self.routed = Counter(
            "danmaku_routed_comments_total",
            "Comments routed to the information model (or a joint bundle's information head), by mode.",
            ["mode"],
            registry=r,
        )
        self.rejections = Counter(
            "danmaku_rejections_total", "Requests refused, by reason (the error code).", ["reason"], registry=r
        )
        self.ready = Gauge(
            "danmaku_ready",
            "1 while /readyz answers 200 (bundles loaded and warmed, not draining), else 0.",
            registry=r,
        )
        self.model_info = Gauge(
            "danmaku_model_info",
            "Loaded bundles (value 1): name, version, task and execution provider.",
            ["model", "version", "task", "provider"],
            registry=r,
        )

    def batch_observer(self, model: str) -> BatchMetrics:
        return BatchMetrics(self, model)

    def decided(self, batch: RoutedBatch) -> None:
        """``service.routing.DecisionObserver``: final labels, and comments routed by mode."""
        for decision in batch.decisions:
            self.predictions.labels(decision.label).inc()
        self.routed.labels(batch.mode).inc(sum(d.information_probability is not None for d in batch.decisions))

    def record_model(self, model: OnnxModel) -> None:
        metadata = model.metadata
        self.model_info.labels(metadata.name, metadata.version, metadata.task, model.providers[0]).set(1)


class BatchMetrics:
    """``service.batcher.BatchObserver`` for one model."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._queue_depth = metrics.queue_depth.labels(model)
        self._queue_wait = metrics.queue_wait.labels(model)
        self._batch_size = metrics.batch_size.labels(model)
        self._batch_tokens = metrics.batch_tokens.labels(model)
        self._padding = metrics.padding_ratio.labels(model)
        self._inference = metrics.inference_duration.labels(model)
        self._failures = metrics.batch_failures.labels(model)
        self._skipped = metrics.skipped.labels(model)

    def queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def batch_started(self, *, size: int, padded_tokens: int, real_tokens: int, queue_waits: Sequence[float]) -> None:
        self._batch_size.observe(size)
        self._batch_tokens.observe(padded_tokens)
        self._padding.observe(1.0 - real_tokens / padded_tokens if padded_tokens else 0.0)
        for wait in queue_waits:
            self._queue_wait.observe(wait)

    def batch_finished(self, *, seconds: float, failed: bool) -> None:
        self._inference.observe(seconds)
        if failed:
            self._failures.inc()

    def skipped(self, count: int) -> None:
        self._skipped.inc(count)
