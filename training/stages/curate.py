"""Stage 5, curate: the training set of BERT v2, drawn from the agreement results and manual labels.

Reference sampling (rates configurable), every row tagged with its ``provenance``:

- ``agreed``: holdout rows where v1 and the LLM agree on a set other than {others} (100%);
- ``agreed_others``: agreed rows labelled only ``others`` (15%: others floods the data);
- ``disagreed_to_others``: disagreed rows, relabelled ``others``/``other`` (5%: teaches the model
  that ambiguous comments are ``others``; the LLM's labels stay in ``llm_labels``);
- ``manual``: human labels (100%); a holdout row with the same text as a manual row is dropped.

Draws are exact (``round(rate * n)`` rows, without replacement), seeded, one random stream per
pool so changing one rate leaves the other draws as they were. Then a stratified 80/20
train/validation split by primary main category. Pure: returns records, counts and masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.modeling.targets import normalised
from training.records import LabelledText
from training.stages.split import stratified_validation_mask
from training.taxonomy import OTHERS

AGREED = "agreed"
AGREED_OTHERS = "agreed_others"
DISAGREED_TO_OTHERS = "disagreed_to_others"
MANUAL = "manual"
PROVENANCES = (AGREED, AGREED_OTHERS, DISAGREED_TO_OTHERS, MANUAL)
TRAIN = "train"
VALIDATION = "validation"


class CurationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agreed_rate: float = Field(1.0, ge=0, le=1, description="Share kept of agreed rows not labelled only others.")
    agreed_others_rate: float = Field(0.15, ge=0, le=1, description="Share kept of agreed rows labelled others.")
    disagreed_to_others_rate: float = Field(
        0.05, ge=0, le=1, description="Share of disagreed rows kept and relabelled others."
    )
    manual_rate: float = Field(1.0, ge=0, le=1, description="Share kept of the manual labels.")
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="Share of each category held for validation.")


@dataclass
class Curated:
    records: list[LabelledText]  # every kept row, with extra provenance and split
    validation: np.ndarray  # bool per kept row
    counts: dict[str, Any]

    def split(self, name: str) -> list[LabelledText]:
        wanted = name == VALIDATION
        return [record for record, flag in zip(self.records, self.validation, strict=True) if bool(flag) == wanted]


def _draw(indices: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    count = round(rate * len(indices))
    return np.sort(rng.choice(indices, size=count, replace=False)) if count else indices[:0]


def _with(record: LabelledText, labels: tuple[str, ...], subs: tuple[str, ...], **extra: Any) -> LabelledText:
    merged = dict(record.extra)
    merged.update(extra)
    return LabelledText(
        id=record.id, text=record.text, labels=labels, subcategories=subs, source=record.source, extra=merged
    )


def curate(
    holdout: Sequence[LabelledText],
    agreed: Sequence[bool] | np.ndarray,
    manual: Sequence[LabelledText] = (),
    *,
    settings: CurationSettings,
    seed: int,
) -> Curated:
    """Select, relabel and split (see the module docstring)."""
    agreed = np.asarray(agreed, dtype=bool)
    if len(agreed) != len(holdout):
        raise ValueError(f"{len(holdout)} holdout rows but {len(agreed)} agreement flags")
    manual_texts = {record.text for record in manual}
    in_manual = np.fromiter((record.text in manual_texts for record in holdout), dtype=bool, count=len(holdout))
    labels = [normalised(record) for record in holdout]
    only_others = np.fromiter((set(mains) == {OTHERS} for mains, _ in labels), dtype=bool, count=len(holdout))
    pools = {
        AGREED: np.flatnonzero(agreed & ~only_others & ~in_manual),
        AGREED_OTHERS: np.flatnonzero(agreed & only_others & ~in_manual),
        DISAGREED_TO_OTHERS: np.flatnonzero(~agreed & ~in_manual),
        MANUAL: np.arange(len(manual)),
    }
    rates = {
        AGREED: settings.agreed_rate,
        AGREED_OTHERS: settings.agreed_others_rate,
        DISAGREED_TO_OTHERS: settings.disagreed_to_others_rate,
        MANUAL: settings.manual_rate,
    }
    chosen = {
        name: _draw(pool, rates[name], np.random.default_rng([seed, index]))
        for index, (name, pool) in enumerate(pools.items())
    }
    records: list[LabelledText] = []
    for index in chosen[AGREED]:
        mains, subs = labels[index]
        records.append(_with(holdout[index], mains, subs, provenance=AGREED))
    for index in chosen[AGREED_OTHERS]:
        mains, subs = labels[index]
        records.append(_with(holdout[index], mains, subs, provenance=AGREED_OTHERS))
    for index in chosen[DISAGREED_TO_OTHERS]:
        mains, subs = labels[index]
        records.append(
            _with(
                holdout[index],
                (OTHERS,),
                ("other",),
                provenance=DISAGREED_TO_OTHERS,
                llm_labels=list(mains),
                llm_subcategories=list(subs),
            )
        )
    for index in chosen[MANUAL]:
        mains, subs = normalised(manual[index])
        records.append(_with(manual[index], mains, subs, provenance=MANUAL))

    validation = stratified_validation_mask(
        [record.labels[0] for record in records],
        validation_fraction=settings.validation_fraction,
        seed=seed,
    )
    records = [
        _with(record, record.labels, record.subcategories, split=VALIDATION if flag else TRAIN)
        for record, flag in zip(records, validation, strict=True)
    ]
    composition: dict[str, int] = {}
    for record in records:
        for label in record.labels:
            composition[label] = composition.get(label, 0) + 1
    counts = {
        "rows": len(records),
        "train": int((~validation).sum()),
        "validation": int(validation.sum()),
        "pools": {name: len(pool) for name, pool in pools.items()},
        "kept": {name: len(rows) for name, rows in chosen.items()},
        "rates": rates,
        "holdout_rows_dropped_as_manual_duplicates": int(in_manual.sum()),
        "labels": dict(sorted(composition.items(), key=lambda item: -item[1])),
    }
    return Curated(records=records, validation=validation, counts=counts)
