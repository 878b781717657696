"""Distillation on tiny tensors and a tiny encoder: each loss against a hand computation, teacher
annealing's end points, the λ schedule through a resumed ``fit``, and the student network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from service.bundle import Head
from service.text import Preprocessing
from tests.fixtures.labelled import synthetic_records
from training.encoders.tiny import build_tiny_encoder
from training.modeling.batching import encode_dataset
from training.modeling.classifiers import MultiHeadClassifier, load_encoder
from training.modeling.distillation import (
    DistillationObjective,
    annealed_targets,
    annealing_weight,
    binary_kl_with_logits,
    captured_hidden_states,
    cls_loss,
    encoder_layers,
    evenly_spaced_layers,
    hidden_state_loss,
    layer_map,
    resolve_layers,
    soft_target_loss,
    soft_targets,
    student_from_teacher,
)
from training.modeling.saved import ClassifierCard, load_classifier, save_classifier
from training.modeling.settings import TrainingSettings
from training.modeling.targets import emotion_targets
from training.modeling.trainer import fit, multi_label_loss
from training.taxonomy import MAIN_LABELS, SUB_LABELS


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bernoulli_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


# ---------------------------------------------------------------------------------------------- losses
def test_binary_kl_matches_the_hand_computation_and_is_zero_at_the_teacher() -> None:
    value = binary_kl_with_logits(torch.tensor([0.0]), torch.tensor([0.8]))
    assert value.item() == pytest.approx(_bernoulli_kl(0.8, 0.5), abs=1e-6)
    logits = torch.tensor([[-3.0, 0.0, 1.5]])
    assert torch.allclose(binary_kl_with_logits(logits, torch.sigmoid(logits)), torch.zeros(1, 3), atol=1e-6)
    # hard targets: zero entropy, so the KL is plain BCE (no NaN from 0·log 0)
    hard = binary_kl_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))
    assert hard.tolist() == pytest.approx([-math.log(_sigmoid(2.0)), -math.log(1 - _sigmoid(-1.0))], abs=1e-6)


def test_binary_kl_has_the_gradient_of_soft_target_bce() -> None:
    """KL = BCE - H(teacher): the teacher's entropy is a constant, so both train the student alike."""
    target = torch.tensor([0.3, 0.9, 0.5])
    first = torch.tensor([0.2, -1.0, 2.0], requires_grad=True)
    second = first.detach().clone().requires_grad_(True)
    binary_kl_with_logits(first, target).sum().backward()
    torch.nn.functional.binary_cross_entropy_with_logits(second, target, reduction="sum").backward()
    assert first.grad is not None and second.grad is not None
    assert torch.allclose(first.grad, second.grad, atol=1e-6)


def test_soft_target_loss_uses_the_temperature_on_both_sides_and_scales_by_its_square() -> None:
    teacher, student = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    for temperature in (1.0, 2.0, 4.0):
        expected = temperature**2 * _bernoulli_kl(_sigmoid(2.0 / temperature), _sigmoid(-1.0 / temperature))
        assert soft_target_loss(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-5)
        assert soft_target_loss(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_targets(torch.tensor([2.0]), 2.0).item() == pytest.approx(_sigmoid(1.0))
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(torch.tensor([1.0]), 0.0)


def test_annealing_zero_gives_the_teacher_target_and_one_the_gold_label() -> None:
    gold = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 1.0]])
    teacher = torch.tensor([[0.7, 0.2, 0.4], [0.1, 0.6, 0.3]])
    assert torch.equal(annealed_targets(gold, teacher, 0.0), teacher)
    expected_gold = torch.tensor([[1.0, 0.0, 0.4], [0.0, 1.0, 1.0]])  # NaN: no gold, the teacher's target stays
    assert torch.equal(annealed_targets(gold, teacher, 1.0), expected_gold)
    halfway = annealed_targets(gold, teacher, 0.25)
    assert halfway[0].tolist() == pytest.approx([0.25 + 0.75 * 0.7, 0.75 * 0.2, 0.4])
    with pytest.raises(ValueError):
        annealed_targets(gold, teacher, 1.5)


def test_the_annealing_schedule_is_linear_monotonic_and_a_function_of_the_step() -> None:
    weights = [annealing_weight(step, 5) for step in range(5)]
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert annealing_weight(3, 5) == weights[3]  # no state: a resumed run gets the same λ
    assert annealing_weight(9, 5) == 1.0 and annealing_weight(0, 1) == 1.0


def test_hidden_state_losses_by_hand_masked_and_zero_when_equal() -> None:
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [3.0, 5.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third token is padding: left out
    # token 1: (0 + 4) / 2 = 2; token 2: (0 + 1) / 2 = 0.5; mean over real tokens = 1.25
    assert hidden_state_loss(student, teacher, mask).item() == pytest.approx(1.25)
    assert hidden_state_loss(student, student, mask).item() == 0.0
    kl = hidden_state_loss(student, teacher, mask, kind="kl")
    p, q = torch.softmax(teacher[0, :2], -1), torch.softmax(student[0, :2], -1)
    assert kl.item() == pytest.approx(float((p * (p / q).log()).sum(-1).mean()), rel=1e-5)
    assert hidden_state_loss(student, student, mask, kind="kl").item() == pytest.approx(0.0, abs=1e-6)
    # [CLS]: the first token only
    assert cls_loss(student, teacher).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="differ"):
        hidden_state_loss(student, teacher[..., :1])


def test_layer_maps_are_evenly_spaced_and_end_at_the_top() -> None:
    assert layer_map(6, 12) == [2, 4, 6, 8, 10, 12]
    assert evenly_spaced_layers(4, 12) == [2, 5, 8, 11]
    assert evenly_spaced_layers(12, 12) == list(range(12))
    assert resolve_layers(None, 4) == [0, 1, 2, 3]
    assert resolve_layers(2, 4) == [1, 3]
    assert resolve_layers([0, 3], 4) == [0, 3]
    for bad in ([3, 1], [0, 0], [4], []):
        with pytest.raises(ValueError):
            resolve_layers(bad, 4)
    with pytest.raises(ValueError):
        evenly_spaced_layers(5, 4)


# ---------------------------------------------------------------------------------------------- student
@pytest.fixture(scope="module")
def deep_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [record.text for record in synthetic_records(40, seed=3)]
    return build_tiny_encoder(tmp_path_factory.mktemp("deep") / "tiny-4", corpus=texts, num_layers=4)


def _teacher(encoder: Path) -> MultiHeadClassifier:
    torch.manual_seed(0)
    return MultiHeadClassifier(load_encoder(str(encoder)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS)).eval()


def _batch() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]),
    }


def test_a_student_with_every_layer_is_the_teacher(deep_encoder: Path) -> None:
    teacher = _teacher(deep_encoder)
    student = student_from_teacher(teacher, None).eval()
    with torch.no_grad():
        for ours, theirs in zip(student(**_batch()), teacher(**_batch()), strict=True):
            assert torch.equal(ours, theirs)
    assert student is not teacher and student.main_head.weight is not teacher.main_head.weight


def test_a_smaller_student_keeps_the_chosen_layers_and_round_trips(deep_encoder: Path, tmp_path: Path) -> None:
    teacher = _teacher(deep_encoder)
    student = student_from_teacher(teacher, 2).eval()  # evenly spaced: teacher layers 1 and 3
    assert len(encoder_layers(student)) == 2 and student.encoder.config.num_hidden_layers == 2
    assert teacher.encoder.config.num_hidden_layers == 4  # the teacher is untouched
    for position, kept in enumerate([1, 3]):
        ours, theirs = encoder_layers(student)[position].state_dict(), encoder_layers(teacher)[kept].state_dict()
        assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert torch.equal(student.sub_head.weight, teacher.sub_head.weight)
    with torch.no_grad(), captured_hidden_states(student) as states:
        before = student(**_batch())
    assert len(states[0]) == 3  # embeddings + 2 layers
    assert not student.encoder.config.output_hidden_states  # restored
    card = ClassifierCard(
        kind="multi_head",
        base_encoder=str(deep_encoder),
        heads=[
            Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
            Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
        ],
        max_sequence_length=16,
        preprocessing=Preprocessing(),
    )
    save_classifier(student, AutoTokenizer.from_pretrained(str(deep_encoder)), card, tmp_path / "student")
    loaded, _, _ = load_classifier(tmp_path / "student")
    with torch.no_grad():
        after = loaded(**_batch())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after, strict=True))


# ---------------------------------------------------------------------------------------------- objective
def test_the_objective_learns_the_teacher_first_and_the_gold_label_last(deep_encoder: Path) -> None:
    teacher = _teacher(deep_encoder)
    student = student_from_teacher(teacher, 2).eval()
    batch = _batch()
    with torch.no_grad():
        teacher_main, teacher_sub = teacher(**batch)
        student_outputs = student(**batch)
    gold_main = torch.zeros_like(teacher_main)
    gold_main[0, 1] = 1.0
    gold_main[1] = float("nan")  # row 1 is unlabelled
    gold_sub = torch.zeros_like(teacher_sub)
    gold_sub[1] = float("nan")
    objective = DistillationObjective(
        teacher_logits=[teacher_main.numpy(), teacher_sub.numpy()], temperature=2.0, annealing=True
    )
    indices = np.array([0, 1])
    weights = [None, None]
    with torch.no_grad():
        first = objective(student, batch, [gold_main, gold_sub], indices, step=0, total_steps=3, pos_weights=weights)
        last = objective(student, batch, [gold_main, gold_sub], indices, step=2, total_steps=3, pos_weights=weights)

    def expected(weight: float) -> float:
        total = 0.0
        for logits, gold, teacher_logits in zip(
            student_outputs, (gold_main, gold_sub), (teacher_main, teacher_sub), strict=True
        ):
            supervised = torch.nn.functional.binary_cross_entropy_with_logits(
                logits[0], weight * gold[0] + (1 - weight) * torch.sigmoid(teacher_logits[0]), reduction="none"
            )
            soft = 4.0 * binary_kl_with_logits(logits[1] / 2.0, torch.sigmoid(teacher_logits[1] / 2.0))
            total += float(torch.cat([supervised, soft]).mean())
        return total

    assert first.item() == pytest.approx(expected(0.0), rel=1e-5)
    assert last.item() == pytest.approx(expected(1.0), rel=1e-5)
    # the student of an identical teacher, with annealing off, has nothing to learn
    same = DistillationObjective(teacher_logits=[o.numpy() for o in student_outputs], annealing=False)
    with torch.no_grad():
        zero = same(student, batch, [gold_main, gold_sub], indices, step=0, total_steps=3, pos_weights=weights)
    assert zero.item() == pytest.approx(0.0, abs=1e-5)
    # intermediate layers: zero against itself, positive against the deeper teacher
    itself = DistillationObjective(
        teacher_logits=[o.numpy() for o in student_outputs],
        annealing=False,
        intermediate="ffn+cls",
        teacher=student,
        student_to_teacher_layers=[1, 2],
    )
    mapped = DistillationObjective(
        teacher_logits=[o.numpy() for o in student_outputs],
        annealing=False,
        intermediate="ffn",
        teacher=teacher,
        student_to_teacher_layers=[1, 2],  # student layer 2 (teacher's 4th) vs teacher layer 2
    )
    with torch.no_grad():
        assert itself(
            student, batch, [gold_main, gold_sub], indices, step=0, total_steps=1, pos_weights=weights
        ).item() == pytest.approx(0.0, abs=1e-5)
        assert (
            mapped(student, batch, [gold_main, gold_sub], indices, step=0, total_steps=1, pos_weights=weights).item()
            > 0.0
        )


class StepRecorder:
    """A label objective that records the (step, total) ``fit`` hands it."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []

    def prepare(self, device: torch.device) -> None:
        pass

    def __call__(self, model, inputs, targets, indices, *, step, total_steps, pos_weights):  # type: ignore[no-untyped-def]
        self.steps.append((step, total_steps))
        outputs = model(**inputs)
        return multi_label_loss(outputs, targets, pos_weights)


def test_fit_hands_the_objective_a_global_step_that_a_resumed_run_continues(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    records = synthetic_records(24, seed=5)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder_dir))
    data = encode_dataset(
        [record.text for record in records],
        tokenizer,
        targets=list(emotion_targets(records)),
        max_sequence_length=16,
        preprocessing=Preprocessing(),
        progress=False,
    )
    settings = TrainingSettings(epochs=2, batch_size=8, warmup_ratio=0.0, max_sequence_length=16)

    def model() -> MultiHeadClassifier:
        torch.manual_seed(0)
        return MultiHeadClassifier(
            load_encoder(str(tiny_encoder_dir)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS)
        )

    whole = StepRecorder()
    fit(
        model(),
        data,
        settings=settings,
        seed=0,
        checkpoint_dir=tmp_path / "a",
        fingerprint="f",
        objective=whole,
        progress=False,
    )
    assert whole.steps == [(step, 6) for step in range(6)]
    first, second = StepRecorder(), StepRecorder()
    fit(
        model(),
        data,
        settings=settings.model_copy(update={"epochs": 1}),
        seed=0,
        checkpoint_dir=tmp_path / "b",
        fingerprint="f",
        objective=first,
        progress=False,
    )
    # a run with 2 epochs finds the 1-epoch checkpoint only if the fingerprint matches: same run, resumed
    fit(
        model(),
        data,
        settings=settings,
        seed=0,
        checkpoint_dir=tmp_path / "b",
        fingerprint="f",
        objective=second,
        progress=False,
    )
    assert [step for step, _ in second.steps] == [3, 4, 5]
    assert {total for _, total in second.steps} == {6}
