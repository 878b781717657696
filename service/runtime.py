"""What the service runs: the models, a micro-batcher for each, and the router over them.

The models are the emotion bundle and the information bundle, or the emotion bundle alone when it
carries the information head (a joint bundle). That rule is ``service_bundles``: a joint emotion bundle
wins, and an information bundle beside it is not loaded (logged).

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
from service.bundle import Bundle, BundleMetadata, carries_information_head, load_bundle
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


def service_bundles(settings: Settings) -> list[Bundle]:
    """The bundles to serve, emotion first: the information bundle only when the emotion bundle lacks the
    information head; both checked (``load_bundle``)."""
    emotion = load_bundle(settings.bundle_dir(settings.emotion_bundle), verify_sha256=settings.verify_sha256)
    information_dir = settings.bundle_dir(settings.information_bundle)
    if carries_information_head(emotion.metadata):
        if information_dir.exists():
            logger.info(
                "bundle %s carries the information head: %s is not loaded (the joint head decides 'information')",
                emotion.metadata.name,
                information_dir,
            )
        return [emotion]
    return [emotion, load_bundle(information_dir, verify_sha256=settings.verify_sha256)]


class Runtime:
    def __init__(self, models: Sequence[OnnxModel], router: Router, batched: Sequence[BatchedModel]) -> None:
        self.models = list(models)
        self.router = router
        self._batched = list(batched)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics | None = None) -> Runtime:
        """Load, check and warm up the bundles (blocking; the lifespan runs it in a thread)."""
        metrics = metrics or Metrics()
        providers = choose_providers(settings.execution_provider, ort.get_available_providers())
        models = [
            OnnxModel.load(
                bundle,
                providers=providers,
                intra_op_threads=settings.intra_op_threads,
                inter_op_threads=settings.inter_op_threads,
            )
            for bundle in service_bundles(settings)
        ]
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
        information = batched[1] if len(batched) > 1 else None
        router = Router(batched[0], information, policy, observer=metrics)  # checks the bundles before warm-up
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
