"""``danmaku-train score-served``: score the label the service returns (both bundles, routing rule,
thresholds) on a gold table; writes ``served.json`` and ``served.md`` under ``--out``.

The comments go through the service's own ``Runtime`` (bundles, micro-batchers, router), exactly as
``POST /classify`` and ``danmaku-serve classify-file`` answer them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from training.commands.options import reported_errors

GOLD_FORMATS = ("labels", "smp2020")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "score-served", help="score the served label (both bundles + routing) against a gold table"
    )
    parser.add_argument("--models-dir", type=Path, required=True, help="directory holding the bundles")
    parser.add_argument("--emotion-bundle", default="emotion", help="emotion bundle directory under --models-dir")
    parser.add_argument(
        "--information-bundle", default="information", help="information bundle directory under --models-dir"
    )
    parser.add_argument("--table", type=Path, required=True, help="gold table (labelled-text table, or see --gold)")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument(
        "--gold",
        choices=GOLD_FORMATS,
        default="labels",
        help="labels: a labelled-text table of main labels; smp2020: an SMP2020-EWECT JSON array "
        "(happy -> emotions_positive; angry, sad, fear -> emotions_negative; others left out)",
    )
    parser.add_argument("--mode", choices=("precision", "recall"), default="precision", help="the service's mode")
    parser.add_argument("--worst", type=int, default=30, help="most confident errors listed")
    parser.add_argument("--title", help="report title (default: the table's name)")
    parser.set_defaults(handler=reported_errors(run))


def _gold_rows(path: Path, gold: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``(id, text, source, gold labels)`` per row."""
    if gold == "smp2020":
        from training.evaluation.served import polarity_gold

        items = json.loads(path.read_text(encoding="utf-8"))
        return [(str(item["id"]), str(item["content"]), "weibo", polarity_gold(str(item["label"]))) for item in items]
    from training.tables import read_labelled

    return [
        (record.id, record.text, record.source, record.labels or ("others",))
        for record in read_labelled(path, default_source="gold")
    ]


async def _classify(settings: Any, texts: list[str], mode: str) -> list[tuple[str, float]]:
    """``(served label, probability behind it)`` per text, through the service's runtime and router."""
    from service.bulk.runner import bulk_settings
    from service.runtime import Runtime

    settings, per_call = bulk_settings(settings)
    runtime = await asyncio.to_thread(Runtime.load, settings)
    runtime.start()
    emotion = runtime.router.emotion.metadata.name
    answers: list[tuple[str, float]] = []
    try:
        for start in range(0, len(texts), per_call):
            routed = await runtime.router.classify(texts[start : start + per_call], mode=mode, return_scores=True)  # type: ignore[arg-type]
            for decision in routed.decisions:
                if decision.label == "information" and decision.information_probability is not None:
                    confidence = decision.information_probability
                else:
                    confidence = (decision.scores or {})[emotion]["main"][decision.label]
                answers.append((decision.label, confidence))
        return answers
    finally:
        await runtime.stop()


def run(args: argparse.Namespace) -> int:
    from service.settings import Settings
    from training.evaluation.served import ServedRow, score_served, served_markdown

    rows = _gold_rows(args.table, args.gold)
    settings = Settings(
        models_dir=args.models_dir, emotion_bundle=args.emotion_bundle, information_bundle=args.information_bundle
    )
    decisions = asyncio.run(_classify(settings, [text for _, text, _, _ in rows], args.mode))
    served = [
        ServedRow(
            id=row_id,
            text=text,
            source=source,
            gold=gold,
            label=label,
            confidence=confidence,
        )
        for (row_id, text, source, gold), (label, confidence) in zip(rows, decisions, strict=True)
    ]
    report = score_served(served, worst=args.worst)
    report["models"] = {
        "dir": str(args.models_dir),
        "emotion": args.emotion_bundle,
        "information": args.information_bundle,
    }
    report["mode"] = args.mode
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "served.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (args.out / "served.md").write_text(served_markdown(report, title=args.title or args.table.name), encoding="utf-8")
    overall = report["overall"]
    print(
        f"{overall['rows']} rows: accuracy {overall['accuracy']:.3f}, macro-F1 {overall['macro_f1']:.3f} "
        f"(without others {overall['macro_f1_without_others']:.3f}); "
        + ", ".join(f"{name} {figures['f1']:.3f}" for name, figures in overall["per_class"].items())
    )
    print(f"report: {args.out / 'served.md'}")
    return 0
