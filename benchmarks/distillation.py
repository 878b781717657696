"""Teacher vs distilled student vs labels-only student on one labelled table: quality, size, CPU speed.

    python benchmarks/distillation.py --table runs/x/train_v1/test.jsonl \
        --model teacher=runs/x/train_v2/model --model student=runs/kd/distill/model \
        --model labels-only=runs/lo/distill/model [--model student-int8=models/emotion-int8]

Each model is a trained classifier directory (PyTorch) or an exported bundle (ONNX Runtime, the
serving path). Printed per model: encoder layers (checkpoints), parameters, weight-file size,
main-head macro/micro-F1 at 0.5 and sub-head macro-F1 on the table, and CPU comments/s over the
table's texts (median of ``--repeats`` passes after a warm-up). A script that prints figures, not
a test: speed depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from training.modeling.targets import emotion_targets
from training.modeling.trainer import macro_f1
from training.tables import read_labelled


def micro_f1(targets: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> float:
    predicted, truth = probabilities >= threshold, targets >= 0.5
    true_positive = float((predicted & truth).sum())
    denominator = float(predicted.sum() + truth.sum())
    return 2 * true_positive / denominator if denominator else 0.0


def describe(path: Path) -> dict[str, object]:
    """Layers, parameters and weight-file size of a checkpoint or bundle."""
    if (path / "classifier.json").is_file():
        from training.modeling.saved import WEIGHTS_FILE, load_classifier

        model, _, _ = load_classifier(path)
        encoder = getattr(model, "encoder")  # noqa: B009
        return {
            "layers": int(encoder.config.num_hidden_layers),
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "megabytes": (path / WEIGHTS_FILE).stat().st_size / 2**20,
        }
    onnx = path / "model.onnx"
    return {"layers": None, "parameters": None, "megabytes": onnx.stat().st_size / 2**20 if onnx.is_file() else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, required=True, help="labelled table (e.g. train-v1's test rows)")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="repeat per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from training.evaluation.predictors import open_predictor

    records = read_labelled(args.table)
    texts = [record.text for record in records]
    main_targets, sub_targets = emotion_targets(records)
    print(f"{len(texts)} rows of {args.table}; torch threads {torch.get_num_threads()}")
    print(
        f"{'model':<16} {'layers':>6} {'params':>12} {'MB':>8} "
        f"{'main macro':>10} {'main micro':>10} {'sub macro':>9} {'texts/s':>9}"
    )
    for spec in args.model:
        name, _, location = spec.partition("=")
        path = Path(location)
        predictor = open_predictor(path, batch_size=args.batch_size)
        probabilities = predictor.probabilities(texts, progress=False)  # also the warm-up
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.probabilities(texts, progress=False)
            timings.append(time.perf_counter() - start)
        facts = describe(path)
        speed = len(texts) / statistics.median(timings) if texts else 0.0
        parameters = facts["parameters"]
        megabytes = facts["megabytes"]
        print(
            f"{name:<16} {facts['layers'] if facts['layers'] is not None else '-':>6} "
            f"{parameters if parameters is not None else '-':>12} "
            f"{f'{megabytes:.1f}' if isinstance(megabytes, float) else '-':>8} "
            f"{macro_f1(main_targets, probabilities['main']):>10.4f} "
            f"{micro_f1(main_targets, probabilities['main']):>10.4f} "
            f"{macro_f1(sub_targets, probabilities['sub']):>9.4f} {speed:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
