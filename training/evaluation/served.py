"""Score what the service answers: the routed ``label`` of each comment against a gold table.

The other evaluation (``training.stages.evaluate``) scores one model's heads; users see neither head
but the ``label`` the router returns after the emotion model, the routing rule, the information
model and the thresholds. This module scores that label (pure: decisions and gold in, report out):

- A comment is right when the served ``label`` is one of its gold main labels (a few gold rows carry
  two). For per-class figures each row has one gold class: the served label when it is among the
  gold labels, else the first gold label.
- Per class P/R/F1/support, accuracy, macro-F1 over the classes, macro-F1 without ``others``
  (a rare, catch-all class whose F1 swings on a few rows), the confusion matrix, every figure per
  ``source`` too, and the most confident errors with their texts (what a reader checks first).

Gold tables with another label set (e.g. Weibo emotions) are mapped before scoring
(``training.polarity_sets.polarity_of``): only the classes the mapping produces are averaged, and a served label
outside them counts as a miss of the gold class.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from service.settings import Mode
from service.taxonomy import INFORMATION, MAIN_LABELS, OTHERS

if TYPE_CHECKING:
    from service.routing import Decision


@dataclass(frozen=True)
class ServedRow:
    """One scored comment: its gold labels, the served decision and the probability behind it."""

    id: str
    text: str
    source: str
    gold: tuple[str, ...]
    label: str
    confidence: float


GoldFormat = Literal["labels", "smp2020"]
GOLD_FORMATS: tuple[str, ...] = get_args(GoldFormat)


def _single_gold(row: ServedRow) -> str:
    return row.label if row.label in row.gold else row.gold[0]


def class_figures(rows: Sequence[ServedRow], classes: Sequence[str]) -> dict[str, Any]:
    gold = [_single_gold(row) for row in rows]
    predicted = [row.label for row in rows]
    per_class: dict[str, dict[str, float | int]] = {}
    for name in classes:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == name and p == name)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != name and p == name)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == name and p != name)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn, "predicted": tp + fp}
    supported = [name for name in classes if per_class[name]["support"]]
    macro = sum(float(per_class[name]["f1"]) for name in supported) / len(supported) if supported else 0.0
    without_others = [name for name in supported if name != OTHERS]
    macro_without_others = (
        sum(float(per_class[name]["f1"]) for name in without_others) / len(without_others) if without_others else 0.0
    )
    correct = sum(1 for row in rows if row.label in row.gold)
    return {
        "rows": len(rows),
        "accuracy": correct / len(rows) if rows else 0.0,
        "macro_f1": macro,
        "macro_f1_without_others": macro_without_others,
        "per_class": per_class,
    }


def _confusion(rows: Sequence[ServedRow], classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """gold -> served -> count (served labels outside ``classes`` are kept as their own column)."""
    table: dict[str, Counter[str]] = {name: Counter() for name in classes}
    for row in rows:
        table.setdefault(_single_gold(row), Counter())[row.label] += 1
    return {gold: dict(counts) for gold, counts in table.items()}


def score_served(rows: Sequence[ServedRow], *, classes: Sequence[str] | None = None, worst: int = 30) -> dict[str, Any]:
    """The report (JSON-ready): overall and per-source figures, confusion, the ``worst`` confident errors."""
    scored = [row for row in rows if row.gold]
    if not scored:
        raise ValueError("no row has a gold label to score against")
    if classes is None:
        present = {label for row in scored for label in row.gold}
        classes = [name for name in MAIN_LABELS if name in present] + sorted(present - set(MAIN_LABELS))
    by_source: dict[str, list[ServedRow]] = defaultdict(list)
    for row in scored:
        by_source[row.source].append(row)
    errors = sorted((row for row in scored if row.label not in row.gold), key=lambda row: -row.confidence)
    return {
        "classes": list(classes),
        "overall": class_figures(scored, classes),
        "by_source": {source: class_figures(part, classes) for source, part in sorted(by_source.items())},
        "confusion": _confusion(scored, classes),
        "served_labels": dict(Counter(row.label for row in scored)),
        "rows_left_out": len(rows) - len(scored),
        "worst_errors": [
            {
                "id": row.id,
                "text": row.text,
                "source": row.source,
                "gold": list(row.gold),
                "served": row.label,
                "confidence": round(row.confidence, 4),
            }
            for row in errors[:worst]
        ],
    }


def served_markdown(report: Mapping[str, Any], *, title: str) -> str:
    """The report as Markdown: headline, per-class table, per-source table, confusion, worst errors."""
    overall = report["overall"]
    classes = report["classes"]
    lines = [
        f"# {title}",
        "",
        f"{overall['rows']} rows: accuracy {overall['accuracy']:.3f}, macro-F1 {overall['macro_f1']:.3f}, "
        f"macro-F1 without others {overall['macro_f1_without_others']:.3f}.",
        "",
        "| class | precision | recall | F1 | support | served |",
        "|---|---|---|---|---|---|",
    ]
    for name in classes:
        figures = overall["per_class"][name]
        lines.append(
            f"| {name} | {figures['precision']:.3f} | {figures['recall']:.3f} | {figures['f1']:.3f} "
            f"| {figures['support']} | {figures['predicted']} |"
        )
    lines += ["", "Per source:", "", "| source | rows | accuracy | macro-F1 | " + " | ".join(classes) + " |"]
    lines.append("|---" * (4 + len(classes)) + "|")
    for source, figures in report["by_source"].items():
        cells = " | ".join(f"{figures['per_class'][name]['f1']:.3f}" for name in classes)
        lines.append(
            f"| {source} | {figures['rows']} | {figures['accuracy']:.3f} | {figures['macro_f1']:.3f} | {cells} |"
        )
    served = sorted({label for counts in report["confusion"].values() for label in counts})
    lines += ["", "Confusion (rows: gold, columns: served):", "", "| gold \\ served | " + " | ".join(served) + " |"]
    lines.append("|---" * (1 + len(served)) + "|")
    for gold, counts in report["confusion"].items():
        lines.append(f"| {gold} | " + " | ".join(str(counts.get(name, 0)) for name in served) + " |")
    lines += ["", f"The {len(report['worst_errors'])} most confident errors:", ""]
    lines += ["| text | source | gold | served | p |", "|---|---|---|---|---|"]
    for error in report["worst_errors"]:
        text = str(error["text"]).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {text} | {error['source']} | {', '.join(error['gold'])} | {error['served']} | {error['confidence']} |"
        )
    return "\n".join(lines) + "\n"


def gold_rows(path: Path, gold: GoldFormat = "labels") -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``(id, text, source, gold labels)`` per row of a gold table.

    ``labels``: a labelled-text table (``training.tables``); ``smp2020``: an SMP2020-EWECT JSON array
    of ``{id, content, label}``, mapped with ``training.polarity_sets.polarity_of``."""
    if gold == "smp2020":
        from training.polarity_sets import polarity_of, read_items

        return [
            (str(item.get("id", number)), str(item["content"]), "weibo", polarity_of(str(item["label"]), "smp2020"))
            for number, item in enumerate(read_items(path, "smp2020"))
        ]
    from training.tables import read_labelled

    return [
        (record.id, record.text, record.source, record.labels or (OTHERS,))
        for record in read_labelled(path, default_source="gold")
    ]


@dataclass(frozen=True)
class ServedAnswers:
    """The service's decisions on some texts (with every head's probabilities) and the models behind them."""

    decisions: list[Decision]
    emotion: str  # the emotion bundle's name: its key in ``Decision.scores`` and ``versions``
    information: str
    versions: dict[str, str]  # bundle name -> version
    main_labels: tuple[str, ...]  # the emotion bundle's main-head labels, in its column order
    information_threshold: float


async def served_decisions(
    settings: Any, texts: Sequence[str], mode: Mode, *, on_progress: Callable[[int], None] | None = None
) -> ServedAnswers:
    """Every text through the service's runtime and router (the bulk path's ``classify_texts``, with
    scores); ``on_progress(n)`` after each call of ``n`` comments."""
    from service.bulk.runner import CALLS_IN_FLIGHT, bulk_settings, classify_texts
    from service.routing import MAIN_HEAD
    from service.runtime import Runtime

    settings, per_call = bulk_settings(settings)
    runtime = await asyncio.to_thread(Runtime.load, settings)
    runtime.start()
    threshold = runtime.router.policy.threshold(mode, None)
    try:
        decisions = await classify_texts(
            runtime.router,
            texts,
            mode=mode,
            information_threshold=threshold,
            comments_per_call=per_call,
            calls_in_flight=CALLS_IN_FLIGHT,
            on_progress=on_progress,
            return_scores=True,
        )
    finally:
        await runtime.stop()
    emotion = runtime.router.emotion.metadata
    return ServedAnswers(
        decisions=decisions,
        emotion=emotion.name,
        information=runtime.router.deciding_information.metadata.name,
        versions=runtime.router.versions,
        main_labels=tuple(emotion.head(MAIN_HEAD).labels),
        information_threshold=threshold,
    )


async def _classify(settings: Any, texts: Sequence[str], mode: Mode) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """``(served label, probability behind it)`` per text, and the served bundles' versions (one bundle when
    the emotion bundle carries the information head)."""
    answers = await served_decisions(settings, texts, mode)
    labelled = [
        (
            decision.label,
            decision.information_probability
            if decision.label == INFORMATION and decision.information_probability is not None
            else (decision.scores or {})[answers.emotion]["main"][decision.label],
        )
        for decision in answers.decisions
    ]
    return labelled, answers.versions


def score_served_files(
    models_dir: Path,
    table: Path,
    out_dir: Path,
    *,
    emotion_bundle: str = "emotion",
    information_bundle: str = "information",
    gold: GoldFormat = "labels",
    mode: Mode = "precision",
    worst: int = 30,
    title: str | None = None,
) -> dict[str, Any]:
    """Classify ``table`` with the service's runtime on the two bundles (or the one joint emotion bundle,
    whose information head then decides, ``service.runtime.service_bundles``); write ``served.json``, ``served.md``
    and ``rows.jsonl`` (every row's served label) under ``out_dir``; return the report."""
    from service.settings import Settings

    rows = gold_rows(table, gold)
    settings = Settings(models_dir=models_dir, emotion_bundle=emotion_bundle, information_bundle=information_bundle)
    answers, versions = asyncio.run(_classify(settings, [text for _, text, _, _ in rows], mode))
    served = [
        ServedRow(id=row_id, text=text, source=source, gold=labels, label=label, confidence=confidence)
        for (row_id, text, source, labels), (label, confidence) in zip(rows, answers, strict=True)
    ]
    report = score_served(served, worst=worst)
    report["models"] = {
        "dir": str(models_dir),
        "emotion": emotion_bundle,
        "information": information_bundle if len(versions) > 1 else None,  # None: the joint head decided
        "versions": versions,
    }
    report["mode"] = mode
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "served.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / "served.md").write_text(served_markdown(report, title=title or table.name), encoding="utf-8")
    with (out_dir / "rows.jsonl").open("w", encoding="utf-8") as handle:  # every row, to compare runs row by row
        for row in served:
            handle.write(
                json.dumps(
                    {
                        "id": row.id,
                        "source": row.source,
                        "gold": list(row.gold),
                        "label": row.label,
                        "confidence": round(row.confidence, 5),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return report
