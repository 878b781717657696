"""Stage 8, export: a trained classifier directory -> a bundle (+ optional int8/fp16 variants).

1. Predict the validation rows with the PyTorch model and tune each label's threshold for F1
   (``training.evaluation.scoring.tune_head_thresholds``); the tuned thresholds go into the heads.
2. ``export_bundle`` (ONNX, parity check against PyTorch, ``load_bundle`` check, atomic rename)
   with provenance (given by the caller: data files, settings, commit) and metrics (validation
   figures at the default and tuned thresholds, the training history).
3. Variants, each with its own parity figure (``training.export.variants``).

A joint model (card kind ``joint``) exports as one ``emotion`` bundle with the heads ``main``, ``sub``
and ``information`` and the ``features`` input; its information head is tuned and scored on the rows
of the information-vs-others task (the card's ``negatives``), recorded under
``metrics.validation.information``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.bundle import INFORMATION_HEAD, Bundle, Head
from training.evaluation.predictors import model_probabilities
from training.evaluation.scoring import evaluate, headline, tune_head_thresholds
from training.export.onnx_bundle import DEFAULT_TOLERANCE, BundleSpec, export_bundle
from training.export.variants import Precision, write_variant
from training.modeling.saved import WEIGHTS_FILE, load_classifier
from training.records import LabelledText

logger = logging.getLogger(__name__)
# The ONNX exporter's graph passes log every rewrite at INFO; keep the export log readable.
_CHATTY_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")


def _quiet_exporter_logs() -> None:
    for name in _CHATTY_LOGGERS:
        chatty = logging.getLogger(name)
        if chatty.level == logging.NOTSET:
            chatty.setLevel(logging.WARNING)


@dataclass
class Release:
    bundle: Bundle
    variants: dict[str, Bundle] = field(default_factory=dict)


def _parity_texts(validation: Sequence[LabelledText], count: int) -> list[str]:
    texts = [record.text for record in validation[:count]]
    # export_bundle needs a padded batch of at least two; these cover short, long and odd input.
    fallback = ["哈哈哈哈哈哈哈 笑死", "前方高能！！", "这首曲子的作者是谁？", "awsl", "2333333 打卡"]
    return texts if len(texts) >= 2 else [*texts, *fallback]


def release(
    model_dir: Path,
    out_dir: Path,
    *,
    validation: Sequence[LabelledText],
    version: str | None = None,
    provenance: dict[str, Any] | None = None,
    variants: Sequence[Precision] = (),
    parity_rows: int = 64,
    tolerance: float = DEFAULT_TOLERANCE,
    min_support: int = 5,
    batch_size: int = 64,
    int8_float_scopes: Sequence[str] = (),
) -> Release:
    """Export ``model_dir`` (a ``training.modeling.saved`` directory) as the bundle ``out_dir``."""
    from service.bundle import sha256_of

    _quiet_exporter_logs()
    model, tokenizer, card = load_classifier(model_dir)
    task = card.task
    negatives = str(card.training.get("negatives", "routed"))
    heads: list[Head] = list(card.heads)
    metrics: dict[str, Any] = {"training": {key: card.training.get(key) for key in ("history", "best_epoch", "rows")}}
    if validation:
        probabilities = model_probabilities(
            model, tokenizer, card, [r.text for r in validation], batch_size=batch_size, progress=False
        )
        tuned = tune_head_thresholds(
            task, heads, validation, probabilities, negatives=negatives, min_support=min_support
        )
        heads = [head.model_copy(update={"thresholds": tuned[head.name]}) for head in heads]
        report = evaluate(task, heads, validation, probabilities, negatives=negatives)
        metrics["validation"] = {
            "rows": report["rows_scored"],
            "thresholds_tuned_on_this_split": True,
            "default": headline(report, at="default"),
            "tuned": headline(report, at="model"),
        }
        if card.kind == "joint":
            # The joint model's information head, scored as an information bundle is (its own rows);
            # serving decides it at the routing policy's threshold, as with an information bundle.
            metrics["validation"][INFORMATION_HEAD] = {
                "default": headline(report, head=INFORMATION_HEAD, at="default"),
                "tuned": headline(report, head=INFORMATION_HEAD, at="model"),
            }
        logger.info(
            "%s validation macro-F1: %.3f at %.2f, %.3f at tuned thresholds",
            out_dir.name,
            metrics["validation"]["default"]["macro_f1"],
            heads[0].default_threshold,
            metrics["validation"]["tuned"]["macro_f1"],
        )
    spec = BundleSpec(
        name=out_dir.name,
        task=task,
        version=version or f"{out_dir.name}-{sha256_of(model_dir / WEIGHTS_FILE)[:12]}",
        base_encoder=card.base_encoder,
        heads=heads,
        max_sequence_length=card.max_sequence_length,
        preprocessing=card.preprocessing,
        provenance={**(provenance or {}), "training": card.training},
        metrics=metrics,
    )
    texts = _parity_texts(validation, parity_rows)
    bundle = export_bundle(model, tokenizer, spec, out_dir, parity_texts=texts, tolerance=tolerance)
    logger.info("%s: exported, parity max |diff| %.2g", out_dir, bundle.metadata.onnx.parity_max_abs_diff)
    result = Release(bundle=bundle)
    for precision in variants:
        target = out_dir.with_name(f"{out_dir.name}-{precision}")
        variant = write_variant(
            bundle,
            precision,
            target,
            model=model,
            tokenizer=tokenizer,
            parity_texts=texts,
            float_scopes=int8_float_scopes,
        )
        result.variants[precision] = variant
        logger.info(
            "%s: parity max |diff| %.2g, decisions agreeing %.4f",
            target,
            variant.metadata.onnx.parity_max_abs_diff,
            variant.metadata.metrics["variant"]["decision_agreement"],
        )
    return result
