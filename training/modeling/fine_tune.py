"""Fine-tune the two networks on labelled texts: the shared body of train-v1, train-v2 and train-info.

``work_dir`` holds ``checkpoints/`` (per-epoch resume state, see ``trainer.fit``) and ``model/``
(the finished classifier, ``training.modeling.saved``). A finished model whose fingerprint matches
is loaded instead of trained again.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from service.bundle import Head
from service.text import Preprocessing
from training.layout import MODEL_DIR
from training.modeling.batching import EncodedDataset, encode_dataset
from training.modeling.classifiers import InformationClassifier, JointClassifier, load_encoder
from training.modeling.saved import ClassifierCard, build_classifier, load_classifier, read_card, save_classifier
from training.modeling.settings import TrainingSettings
from training.modeling.targets import emotion_targets, information_targets, joint_targets
from training.modeling.trainer import (
    BatchObjective,
    EpochRecord,
    FitResult,
    fit,
    positive_class_weights,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from training.records import LabelledText
from training.taxonomy import INFORMATION, MAIN_LABELS, SUB_LABELS

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
# neg/pos of the information task can be large on skewed manual sets; past this it only adds noise.
INFORMATION_POS_WEIGHT_CAP = 100.0

EMOTION_HEADS = (
    Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
    Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
)
INFORMATION_HEADS = (Head(name="information", output="information_logits", labels=[INFORMATION]),)


@dataclass
class TrainedModel:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    card: ClassifierCard
    directory: Path
    fit: FitResult | None  # None when a finished model was reused

    def summary(self, **rows: int) -> dict[str, Any]:
        """What the train commands report: row counts, where the model is, its best epoch and score."""
        return {
            "rows": rows,
            "model": str(self.directory),
            "best_epoch": self.card.training.get("best_epoch"),
            "best_validation_score": self.card.training.get("best_validation_score"),
        }


def _reuse(work_dir: Path, fingerprint: str) -> TrainedModel | None:
    directory = work_dir / MODEL_DIR
    try:
        card = read_card(directory)
    except FileNotFoundError:
        return None
    if card.training.get("fingerprint") != fingerprint:
        return None
    model, tokenizer, card = load_classifier(directory)
    logger.info("%s is already trained with these data and settings; reusing it", directory)
    return TrainedModel(model=model, tokenizer=tokenizer, card=card, directory=directory, fit=None)


def _load_tokenizer(encoder: str) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(encoder)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer of {encoder!r} has no pad token")
    return tokenizer


def _freeze_embeddings(model: nn.Module, settings: TrainingSettings) -> None:
    if settings.freeze_embeddings:
        encoder = getattr(model, "encoder")  # noqa: B009 - both classifier classes hold one
        encoder.get_input_embeddings().requires_grad_(False)


def _train_and_save(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    card: ClassifierCard,
    train: EncodedDataset,
    validation: EncodedDataset | None,
    *,
    pos_weights: Sequence[np.ndarray | None],
    settings: TrainingSettings,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    on_epoch_end: Callable[[EpochRecord], None] | None,
    progress: bool,
    objective: BatchObjective | None = None,
) -> TrainedModel:
    _freeze_embeddings(model, settings)
    result = fit(
        model,
        train,
        settings=settings,
        seed=seed,
        checkpoint_dir=work_dir / CHECKPOINT_DIR,
        fingerprint=fingerprint,
        validation=validation,
        pos_weights=pos_weights,
        on_epoch_end=on_epoch_end,
        progress=progress,
        objective=objective,
    )
    card.training.update(
        {
            "fingerprint": fingerprint,
            "seed": seed,
            "settings": settings.model_dump(mode="json"),
            "rows": {"train": len(train), "validation": 0 if validation is None else len(validation)},
            "pos_weights": [None if weight is None else [float(x) for x in weight] for weight in pos_weights],
            "history": [vars(record) for record in result.history],
            "best_epoch": result.best_epoch,
            "best_validation_score": result.best_score,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "precision": result.precision,
        }
    )
    directory = save_classifier(model, tokenizer, card, work_dir / MODEL_DIR)
    if not settings.keep_checkpoints:
        shutil.rmtree(work_dir / CHECKPOINT_DIR, ignore_errors=True)
    return TrainedModel(model=model.eval(), tokenizer=tokenizer, card=card, directory=directory, fit=result)


def fine_tune_emotion(
    train: Sequence[LabelledText],
    *,
    encoder: str,
    settings: TrainingSettings,
    preprocessing: Preprocessing,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    validation: Sequence[LabelledText] | None = None,
    pos_weight_cap: float | None = None,
    information_negatives: str | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
) -> TrainedModel:
    """The two-head (main + sub-category) classifier; class-weighted BCE when ``pos_weight_cap`` is set.

    With ``information_negatives`` (``routed`` | ``all``, as in ``information_targets``) the model is
    the joint one: the information head (with text features) on the same encoder, trained on the rows
    that task keeps (its target is NaN, i.e. no loss, elsewhere), ``pos_weight`` = negatives / positives.
    """
    reused = _reuse(work_dir, fingerprint)
    if reused is not None:
        return reused
    seed_everything(seed)
    tokenizer = _load_tokenizer(encoder)
    joint = information_negatives is not None
    card = ClassifierCard(
        kind="joint" if joint else "multi_head",
        base_encoder=encoder,
        heads=[head.model_copy() for head in (*EMOTION_HEADS, *INFORMATION_HEADS)[: 3 if joint else 2]],
        max_sequence_length=settings.max_sequence_length,
        preprocessing=preprocessing,
        pooling=settings.pooling,
        dropout=settings.dropout,
        training={"negatives": information_negatives} if joint else {},
    )
    model = build_classifier(load_encoder(encoder), card)

    def encode(records: Sequence[LabelledText]) -> EncodedDataset:
        targets = (
            joint_targets(records, negatives=information_negatives)
            if information_negatives is not None
            else list(emotion_targets(records))
        )
        return encode_dataset(
            [record.text for record in records],
            tokenizer,
            targets=targets,
            max_sequence_length=settings.max_sequence_length,
            preprocessing=preprocessing,
            with_features=joint,
            progress=progress,
        )

    train_set = encode(train)
    validation_set = encode(validation) if validation else None
    pos_weights: list[np.ndarray | None] = (
        [positive_class_weights(target, cap=pos_weight_cap) for target in train_set.targets[:2]]
        if pos_weight_cap is not None
        else [None, None]
    )
    if joint:
        information = train_set.targets[2][~np.isnan(train_set.targets[2][:, 0])]
        positives = int(information.sum())
        if positives == 0 or positives == len(information):
            raise ValueError(
                f"the information head needs both classes; it has {positives} information rows "
                f"of {len(information)} (negatives={information_negatives!r})"
            )
        assert train_set.features is not None and isinstance(model, JointClassifier)
        model.set_feature_statistics(torch.from_numpy(train_set.features))
        pos_weights.append(positive_class_weights(information, cap=INFORMATION_POS_WEIGHT_CAP))
    return _train_and_save(
        model,
        tokenizer,
        card,
        train_set,
        validation_set,
        pos_weights=pos_weights,
        settings=settings,
        seed=seed,
        work_dir=work_dir,
        fingerprint=fingerprint,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )


def fine_tune_information(
    train: Sequence[LabelledText],
    *,
    encoder: str,
    settings: TrainingSettings,
    preprocessing: Preprocessing,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    validation: Sequence[LabelledText] | None = None,
    negatives: str = "routed",
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Information vs others: pooled text + projected text features, ``pos_weight`` = negatives / positives."""
    reused = _reuse(work_dir, fingerprint)
    if reused is not None:
        return reused
    seed_everything(seed)
    tokenizer = _load_tokenizer(encoder)
    card = ClassifierCard(
        kind="information",
        base_encoder=encoder,
        heads=[head.model_copy() for head in INFORMATION_HEADS],
        max_sequence_length=settings.max_sequence_length,
        preprocessing=preprocessing,
        pooling=settings.pooling,
        dropout=settings.dropout,
        training={"negatives": negatives},
    )
    model = build_classifier(load_encoder(encoder), card)

    def encode(records: Sequence[LabelledText]) -> EncodedDataset:
        keep, targets = information_targets(records, negatives=negatives)
        kept = [record for record, flag in zip(records, keep, strict=True) if flag]
        return encode_dataset(
            [record.text for record in kept],
            tokenizer,
            targets=[targets[keep]],
            max_sequence_length=settings.max_sequence_length,
            preprocessing=preprocessing,
            with_features=True,
            progress=progress,
        )

    train_set = encode(train)
    positives = int(train_set.targets[0].sum())
    if positives == 0 or positives == len(train_set):
        raise ValueError(
            f"the information training set needs both classes; it has {positives} information rows "
            f"of {len(train_set)} (negatives={negatives!r})"
        )
    validation_set = encode(validation) if validation else None
    assert train_set.features is not None
    if isinstance(model, InformationClassifier):
        model.set_feature_statistics(torch.from_numpy(train_set.features))
    pos_weight = positive_class_weights(train_set.targets[0], cap=INFORMATION_POS_WEIGHT_CAP)
    return _train_and_save(
        model,
        tokenizer,
        card,
        train_set,
        validation_set,
        pos_weights=[pos_weight],
        settings=settings,
        seed=seed,
        work_dir=work_dir,
        fingerprint=fingerprint,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )


TEACHER_SCORES_DIR = "teacher"


def _records_targets(card: ClassifierCard, records: Sequence[LabelledText]) -> list[np.ndarray]:
    if card.kind == "multi_head":
        return list(emotion_targets(records))
    if card.kind == "joint":
        return joint_targets(records, negatives=str(card.training.get("negatives", "routed")))
    raise ValueError(f"a distillation teacher is an emotion model (multi_head or joint), not {card.kind!r}")


def fine_tune_student(
    teachers: Sequence[Path],
    train: Sequence[LabelledText],
    unlabelled: Sequence[str],
    *,
    settings: TrainingSettings,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    validation: Sequence[LabelledText] | None = None,
    layers: Sequence[int] | int | None = None,
    mode: str = "distill",
    temperature: float = 2.0,
    annealing: bool = True,
    intermediate: str = "none",
    intermediate_loss: str = "mse",
    intermediate_weight: float = 1.0,
    pos_weight_cap: float | None = None,
    score_chunk_rows: int = 8192,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
) -> TrainedModel:
    """A student of the first of ``teachers`` (trained classifier directories): its encoder with
    ``layers`` kept (``distillation.resolve_layers``), its heads, trained on the labelled ``train``
    rows plus the ``unlabelled`` texts.

    ``mode="distill"``: every teacher scores every training row once (averaged: an ensemble; kept
    under ``work_dir/teacher``, resumable) and ``DistillationObjective`` trains the student
    (``temperature``, ``annealing``, ``intermediate``). ``mode="labels-only"``: the same student on
    the labelled rows alone with class-weighted BCE, the baseline without distillation.
    """
    from service.bundle import sha256_of
    from training.modeling.distillation import (
        DistillationObjective,
        encoder_layers,
        resolve_layers,
        student_from_teacher,
    )
    from training.modeling.saved import WEIGHTS_FILE
    from training.modeling.teacher_scores import teacher_logits

    if mode not in ("distill", "labels-only"):
        raise ValueError(f"mode must be 'distill' or 'labels-only', got {mode!r}")
    if not teachers:
        raise ValueError("distillation needs at least one teacher model")
    reused = _reuse(work_dir, fingerprint)
    if reused is not None:
        return reused
    seed_everything(seed)
    teacher, tokenizer, teacher_card = load_classifier(teachers[0])
    teacher_layers = len(encoder_layers(teacher))
    kept = resolve_layers(layers, teacher_layers)
    student = student_from_teacher(teacher, kept)
    distilling = mode == "distill"
    texts = [record.text for record in train] + (list(unlabelled) if distilling else [])
    gold = _records_targets(teacher_card, train)
    targets = [
        np.concatenate([head, np.full((len(texts) - len(train), head.shape[1]), np.nan, dtype=np.float32)])
        for head in gold
    ]
    with_features = teacher_card.kind == "joint"

    def encode(rows_texts: Sequence[str], rows_targets: Sequence[np.ndarray]) -> EncodedDataset:
        return encode_dataset(
            rows_texts,
            tokenizer,
            targets=rows_targets,
            max_sequence_length=settings.max_sequence_length,
            preprocessing=teacher_card.preprocessing,
            with_features=with_features,
            progress=progress,
        )

    train_set = encode(texts, targets)
    validation_set = (
        encode([record.text for record in validation], _records_targets(teacher_card, validation))
        if validation
        else None
    )
    # as the teacher's recipe: class-weighted emotion heads when capped, neg/pos on the information head
    caps = [pos_weight_cap, pos_weight_cap, INFORMATION_POS_WEIGHT_CAP][: len(gold)]
    pos_weights: list[np.ndarray | None] = [
        None if cap is None else positive_class_weights(head[~np.isnan(head).any(axis=1)], cap=cap)
        for head, cap in zip(gold, caps, strict=True)
    ]
    objective: DistillationObjective | None = None
    scores: dict[str, Any] = {}
    if distilling:
        device = resolve_device(settings.device)
        models = [teacher] + [load_classifier(path)[0] for path in teachers[1:]]
        for path, model_card in zip(teachers[1:], (read_card(path) for path in teachers[1:]), strict=True):
            if [head.labels for head in model_card.heads] != [head.labels for head in teacher_card.heads]:
                raise ValueError(f"teacher {path} has other heads than {teachers[0]}; an ensemble shares its heads")
        digest = "|".join(sha256_of(Path(path) / WEIGHTS_FILE) for path in teachers)
        logits = teacher_logits(
            models,
            train_set,
            out_dir=work_dir / TEACHER_SCORES_DIR,
            teacher_digest=digest,
            batch_size=settings.eval_batch_size,
            device=device,
            precision=resolve_precision(settings.precision, device),
            chunk_rows=score_chunk_rows,
            progress=progress,
        )
        del models[1:]
        objective = DistillationObjective(
            teacher_logits=logits,
            temperature=temperature,
            annealing=annealing,
            intermediate=intermediate,  # type: ignore[arg-type]
            intermediate_loss=intermediate_loss,  # type: ignore[arg-type]
            intermediate_weight=intermediate_weight,
            teacher=teacher if intermediate != "none" else None,
            student_to_teacher_layers=[index + 1 for index in kept],
        )
        scores = {"teacher_logits": str(work_dir / TEACHER_SCORES_DIR)}
    card = teacher_card.model_copy(deep=True)
    card.max_sequence_length = settings.max_sequence_length
    card.training = {
        **({"negatives": teacher_card.training["negatives"]} if "negatives" in teacher_card.training else {}),
        "distillation": {
            "mode": mode,
            "teachers": [str(path) for path in teachers],
            "teacher_layers": teacher_layers,
            "student_layers": kept,
            "rows": {"labelled": len(train), "unlabelled": len(texts) - len(train)},
            **(
                {
                    "temperature": temperature,
                    "annealing": annealing,
                    "intermediate": intermediate,
                    "intermediate_loss": intermediate_loss,
                    "intermediate_weight": intermediate_weight,
                    **scores,
                }
                if distilling
                else {}
            ),
        },
    }
    if objective is None or objective.teacher is None:
        del teacher  # only the intermediate losses need the teacher network during training
    return _train_and_save(
        student,
        tokenizer,
        card,
        train_set,
        validation_set,
        pos_weights=pos_weights,
        settings=settings,
        seed=seed,
        work_dir=work_dir,
        fingerprint=fingerprint,
        on_epoch_end=on_epoch_end,
        progress=progress,
        objective=objective,
    )
