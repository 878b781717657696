"""The shared training loop on the tiny encoder: it learns, it resumes without redoing epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from service.text import Preprocessing
from tests.fixtures.labelled import synthetic_records
from training.modeling.fine_tune import CHECKPOINT_DIR, MODEL_DIR, fine_tune_emotion, fine_tune_information
from training.modeling.saved import load_classifier
from training.modeling.settings import TrainingSettings
from training.modeling.trainer import EpochRecord, positive_class_weights

FAST = TrainingSettings(batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, max_sequence_length=24)


class Interrupted(Exception):
    pass


def test_loss_goes_down_on_a_learnable_task(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(100, seed=1)
    trained = fine_tune_emotion(
        records[:80],
        encoder=str(tiny_encoder_dir),
        settings=FAST.model_copy(update={"epochs": 6}),
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="toy",
        validation=records[80:],
        progress=False,
    )
    history = trained.card.training["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert trained.card.training["best_validation_score"] > 0.6  # main-head macro-F1 on unseen rows
    assert not (tmp_path / CHECKPOINT_DIR).exists()  # resume state removed once the model is saved
    _model, _, card = load_classifier(tmp_path / MODEL_DIR)
    assert card.training["fingerprint"] == "toy"
    assert [head.name for head in card.heads] == ["main", "sub"]


def _state(directory: Path) -> dict[str, torch.Tensor]:
    model, _, _ = load_classifier(directory)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_a_killed_training_resumes_after_its_last_epoch(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(40, seed=2)
    settings = FAST.model_copy(update={"epochs": 3})
    common = {
        "encoder": str(tiny_encoder_dir),
        "settings": settings,
        "preprocessing": Preprocessing(),
        "seed": 3,
        "fingerprint": "run-1",
        "progress": False,
    }
    uninterrupted = fine_tune_emotion(records, work_dir=tmp_path / "straight", **common)  # type: ignore[arg-type]

    def die_after_first_epoch(record: EpochRecord) -> None:
        if record.epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        fine_tune_emotion(records, work_dir=tmp_path / "killed", on_epoch_end=die_after_first_epoch, **common)  # type: ignore[arg-type]
    assert (tmp_path / "killed" / CHECKPOINT_DIR / "last.pt").is_file()
    assert not (tmp_path / "killed" / MODEL_DIR).exists()

    seen: list[int] = []
    resumed = fine_tune_emotion(
        records,
        work_dir=tmp_path / "killed",
        on_epoch_end=lambda record: seen.append(record.epoch),
        **common,  # type: ignore[arg-type]
    )
    assert resumed.fit is not None and resumed.fit.epochs_run == [2, 3]
    assert seen == [2, 3]
    assert [h["epoch"] for h in resumed.card.training["history"]] == [1, 2, 3]
    straight, again = _state(uninterrupted.directory), _state(resumed.directory)
    for name, tensor in straight.items():
        assert torch.allclose(tensor, again[name], atol=1e-5), name

    # Finished: a third call reuses the saved model instead of training.
    reused = fine_tune_emotion(records, work_dir=tmp_path / "killed", **common)  # type: ignore[arg-type]
    assert reused.fit is None


def test_a_checkpoint_of_other_data_is_not_resumed(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(24, seed=4)
    settings = FAST.model_copy(update={"epochs": 2})

    def die(record: EpochRecord) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        fine_tune_emotion(
            records,
            encoder=str(tiny_encoder_dir),
            settings=settings,
            preprocessing=Preprocessing(),
            seed=0,
            work_dir=tmp_path,
            fingerprint="old",
            on_epoch_end=die,
            progress=False,
        )
    fresh = fine_tune_emotion(
        records,
        encoder=str(tiny_encoder_dir),
        settings=settings,
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="new",
        progress=False,
    )
    assert fresh.fit is not None and fresh.fit.epochs_run == [1, 2]


def test_early_stopping_keeps_the_best_epoch(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(60, seed=6)
    # A learning rate far too high: validation stops improving quickly.
    settings = FAST.model_copy(update={"epochs": 8, "early_stopping_patience": 1, "learning_rate": 0.5})
    trained = fine_tune_emotion(
        records[:40],
        encoder=str(tiny_encoder_dir),
        settings=settings,
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="es",
        validation=records[40:],
        pos_weight_cap=10.0,
        progress=False,
    )
    assert trained.fit is not None and trained.fit.stopped_early
    history = trained.card.training["history"]
    assert len(history) < 8
    scores = [h["validation_score"] for h in history]
    assert trained.card.training["best_epoch"] == 1 + int(np.argmax(scores))
    assert trained.card.training["pos_weights"][0] is not None


def test_information_model_trains_with_features_and_neg_pos_weight(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(50, seed=8)  # 10 information, 10 social, 10 others routed; emotions left out
    trained = fine_tune_information(
        records,
        encoder=str(tiny_encoder_dir),
        settings=FAST.model_copy(update={"epochs": 1}),
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="info",
        progress=False,
    )
    assert trained.card.training["rows"]["train"] == 30
    assert trained.card.training["pos_weights"] == [[pytest.approx(2.0)]]
    model, _, card = load_classifier(tmp_path / MODEL_DIR)
    assert card.kind == "information"
    assert not torch.allclose(model.feature_std, torch.ones_like(model.feature_std))  # type: ignore[arg-type]


def test_positive_class_weights_are_neg_over_pos_capped() -> None:
    targets = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    weights = positive_class_weights(targets, cap=2.0)
    assert weights.tolist() == [2.0, 2.0, 2.0]  # 3/1 capped to 2; unseen label gets the cap
    assert positive_class_weights(targets, cap=10.0).tolist() == [3.0, 10.0, 3.0]


def test_frozen_word_embeddings_stay_as_loaded(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    from training.modeling.classifiers import load_encoder

    trained = fine_tune_emotion(
        synthetic_records(16, seed=7),
        encoder=str(tiny_encoder_dir),
        settings=FAST.model_copy(update={"epochs": 1, "freeze_embeddings": True}),
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path,
        fingerprint="frozen",
        progress=False,
    )
    original = load_encoder(str(tiny_encoder_dir))
    tuned = trained.model.encoder  # type: ignore[union-attr]
    assert torch.equal(tuned.get_input_embeddings().weight, original.get_input_embeddings().weight)
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(tuned.state_dict()[layer], original.state_dict()[layer])


def test_heads_get_their_own_learning_rate_and_norms_no_decay(tiny_encoder_dir: Path) -> None:
    from training.modeling.classifiers import MultiHeadClassifier, load_encoder
    from training.modeling.trainer import _optimizer

    model = MultiHeadClassifier(load_encoder(str(tiny_encoder_dir)), num_main=5, num_sub=22)
    settings = TrainingSettings(learning_rate=1e-4, head_learning_rate=1e-2, weight_decay=0.1)
    groups = _optimizer(model, settings).param_groups
    by_id = {id(p): group for group in groups for p in group["params"]}
    assert by_id[id(model.main_head.weight)]["lr"] == 1e-2
    assert by_id[id(model.main_head.bias)]["weight_decay"] == 0.0
    query = model.encoder.encoder.layer[0].attention.self.query.weight  # type: ignore[union-attr,index]
    assert by_id[id(query)]["lr"] == 1e-4 and by_id[id(query)]["weight_decay"] == 0.1
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
    default = _optimizer(model, TrainingSettings(learning_rate=3e-5)).param_groups
    assert {group["lr"] for group in default} == {3e-5}
