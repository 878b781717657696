"""Fixed splits of a labelled danmaku table for quality experiments (issue 13).

Writes, under OUT:
- ``test.jsonl``: ``--test-size`` rows no stage, early stopping or threshold tuning ever sees,
  stratified by ``source`` x main label (so every corpus and class keeps its share);
- ``curated.jsonl``: every other row, with a ``split`` column (``train`` / ``validation``,
  ``--validation-size`` rows stratified the same way), readable by ``danmaku-train train-v2``,
  ``train-info`` and ``export --validation``.

Seeded; the same input and seed give the same files. Usage:
    python scripts/teacher_splits.py ../shared/data/teacher/teacher_labels.jsonl runs/real/splits
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from training.splits import stratified_validation_mask
from training.stages.train_v1 import test_stratum
from training.tables import read_labelled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--test-size", type=int, default=2500)
    parser.add_argument("--validation-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.table.read_text(encoding="utf-8").splitlines() if line.strip()]
    strata = [test_stratum(record) for record in read_labelled(args.table, require_labels=False)]
    test = stratified_validation_mask(strata, validation_fraction=args.test_size / len(rows), seed=args.seed)
    rest = [stratum for stratum, flag in zip(strata, test, strict=True) if not flag]
    validation = stratified_validation_mask(
        rest, validation_fraction=args.validation_size / len(rest), seed=args.seed + 1
    )
    rest_rows = [row for row, flag in zip(rows, test, strict=True) if not flag]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "test.jsonl").open("w", encoding="utf-8") as handle:
        for row, flag in zip(rows, test, strict=True):
            if flag:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (args.out / "curated.jsonl").open("w", encoding="utf-8") as handle:
        for row, flag in zip(rest_rows, validation, strict=True):
            handle.write(json.dumps({**row, "split": "validation" if flag else "train"}, ensure_ascii=False) + "\n")
    counts = Counter(("test" if flag else "rest", str(row.get("source"))) for row, flag in zip(rows, test, strict=True))
    print(f"test {int(test.sum())}, validation {int(validation.sum())}, train {len(rest_rows) - int(validation.sum())}")
    print("rows by (part, source):", dict(sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
