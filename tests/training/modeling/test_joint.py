"""The joint model (one encoder, emotion + information heads) and the loss that leaves unlabelled targets out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from service.text import Preprocessing
from tests.fixtures.labelled import synthetic_records
from training.modeling.fine_tune import MODEL_DIR, fine_tune_emotion
from training.modeling.saved import load_classifier
from training.modeling.settings import TrainingSettings
from training.modeling.targets import information_targets, joint_targets
from training.modeling.trainer import multi_label_loss

FAST = TrainingSettings(epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, max_sequence_length=24)


def test_nan_targets_are_left_out_of_the_loss() -> None:
    logits = torch.tensor([[2.0], [-1.0], [5.0]])
    labelled = multi_label_loss([logits[:2]], [torch.tensor([[1.0], [0.0]])], [None])
    masked = multi_label_loss([logits], [torch.tensor([[1.0], [0.0], [float("nan")]])], [None])
    assert torch.isfinite(masked)
    assert masked.item() == pytest.approx(labelled.item())
    # a head with no labelled row in the batch adds nothing (and no NaN) to the sum
    other = multi_label_loss(
        [logits, logits], [torch.tensor([[1.0], [0.0], [1.0]]), torch.full((3, 1), float("nan"))], [None, None]
    )
    alone = multi_label_loss([logits], [torch.tensor([[1.0], [0.0], [1.0]])], [None])
    assert other.item() == pytest.approx(alone.item())


def test_joint_targets_mark_rows_outside_the_information_task() -> None:
    records = synthetic_records(50, seed=8)
    main, sub, information = joint_targets(records, negatives="routed")
    keep, expected = information_targets(records, negatives="routed")
    assert main.shape[0] == sub.shape[0] == information.shape[0] == len(records)
    assert np.array_equal(np.isnan(information[:, 0]), ~keep)
    assert np.array_equal(information[keep], expected[keep])


def test_joint_model_trains_three_heads_on_one_encoder(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(50, seed=8)
    trained = fine_tune_emotion(
        records,
        encoder=str(tiny_encoder_dir),
        settings=FAST,
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="joint",
        pos_weight_cap=10.0,
        information_negatives="routed",
        progress=False,
    )
    assert trained.card.kind == "joint"
    assert [head.name for head in trained.card.heads] == ["main", "sub", "information"]
    assert trained.card.training["pos_weights"][2] == [pytest.approx(2.0)]  # 10 information vs 20 routed
    model, _, card = load_classifier(tmp_path / MODEL_DIR)
    assert card.kind == "joint"
    std = model.features.feature_std  # type: ignore[union-attr]
    assert not torch.allclose(std, torch.ones_like(std))
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        main, sub, information = model(input_ids=ids, attention_mask=mask, features=torch.ones(2, 5))
    assert main.shape == (2, 5) and information.shape == (2, 1) and sub.shape[0] == 2
