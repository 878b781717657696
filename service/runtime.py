"""What the service runs: the two models, a micro-batcher for each, and the router over them.

Built by the app's lifespan (and usable without HTTP, e.g. by a bulk classification command)::

    runtime = Runtime.load(settings, metrics)   # blocking: sessions + warm-up
    runtime.start()                              # inside the event loop
    batch = await runtime.router.classify(texts)
    await runtime.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import onnxruntime as ort

from service import tracing
from service.batcher import BatcherClosed, MicroBatcher, QueueFull
from service.bundle import BundleMetadata, load_bundle
from service.errors import Overloaded, ShuttingDown
from service.metrics import Metrics
from service.model import EncodedText, OnnxModel, Prediction, choose_providers
from service.routing import Router, RoutingPolicy
from service.settings import Settings

logger = logging.getLogger(__name__)


class BatchedModel:
    """A model behind its micro-batcher: ``predict(texts)`` from any number of concurrent callers."""

    def __init__(self, model: OnnxModel, batcher: MicroBatcher[EncodedText, Prediction]) -> None:
        self.model = model
        self.batcher = batcher

    @property
    def metadata(self) -> BundleMetadata:
        return self.model.metadata

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        with tracing.span(f"tokenise {self.model.name}", comments=len(texts)):
            encoded = await asyncio.to_thread(self.model.encode, texts)
        try:
            return await self.batcher.run(encoded, [item.length for item in encoded])
        except QueueFull as exc:
            raise Overloaded(str(exc), retry_after_s=exc.retry_after_s) from exc
        except BatcherClosed as exc:
            raise ShuttingDown() from exc


class Runtime:
    def __init__(self, models: Sequence[OnnxModel], router: Router, batched: Sequence[BatchedModel]) -> None:
        self.models = list(models)
        self.router = router
        self._batched = list(batched)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics | None = None) -> Runtime:
        """Load, check and warm up both bundles (blocking; the lifespan runs it in a thread)."""
        metrics = metrics or Metrics()
        providers = choose_providers(settings.execution_provider, ort.get_available_providers())
        models = []
        for name in (settings.emotion_bundle, settings.information_bundle):
            bundle = load_bundle(settings.bundle_dir(name), verify_sha256=settings.verify_sha256)
            models.append(
                OnnxModel.load(
                    bundle,
                    providers=providers,
                    intra_op_threads=settings.intra_op_threads,
                    inter_op_threads=settings.inter_op_threads,
                )
            )
        policy = RoutingPolicy.from_settings(settings)
        batched = [
            BatchedModel(
                model,
                MicroBatcher(
                    model.name,
                    model.predict,
                    max_batch_size=settings.max_batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    max_wait_s=settings.max_wait_s,
                    max_queued=settings.max_queue_size,
                    max_padding=settings.max_padding_ratio,
                    observer=metrics.batch_observer(model.name),
                ),
            )
            for model in models
        ]
        router = Router(batched[0], batched[1], policy, observer=metrics)  # checks the bundles before warm-up
        for model in models:
            model.warm_up(runs=settings.warmup_runs, batch_sizes=(1, settings.max_batch_size))
            metrics.record_model(model)
            metrics.queue_capacity.labels(model.name).set(settings.max_queue_size)
            logger.info("bundle %s version %s ready on %s", model.name, model.version, ", ".join(model.providers))
        return cls(models, router, batched)

    def start(self) -> None:
        for model in self._batched:
            model.batcher.start()

    async def stop(self) -> None:
        for model in self._batched:
            await model.batcher.stop()
