"""Validate the demo labelled set and print its count tables (the README's tables come from here).

    python scripts/demo_data_stats.py                  # validate + print the tables
    python scripts/demo_data_stats.py --write-readme   # also refresh the tables in its README.md
    python scripts/demo_data_stats.py --file other.jsonl --source llm

Exits 1, listing every problem, when the file is not a sound labelled-text set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.demo_data import demo_labels_path, load_demo_labels
from training.demo_data.report import markdown_summary, replace_generated_block, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="labelled-text JSONL (default: the packaged demo set)")
    parser.add_argument("--source", default="manual", help="expected value of the `source` column ('' = any)")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the tables in the demo set's README.md")
    args = parser.parse_args(argv)

    path = args.file if args.file is not None else demo_labels_path()
    try:
        records = load_demo_labels(path)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    problems = validate(records, expected_source=args.source or None)
    if problems:
        print(f"{path}: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    summary = markdown_summary(records)
    print(summary, end="")
    if args.write_readme:
        readme = path.parent / "README.md"
        try:
            updated = replace_generated_block(readme.read_text(encoding="utf-8"), summary)
        except (OSError, ValueError) as error:
            print(f"error: {readme}: {error}", file=sys.stderr)
            return 1
        readme.write_text(updated, encoding="utf-8")
        print(f"tables written to {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
