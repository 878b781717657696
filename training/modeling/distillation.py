"""Knowledge distillation for the multi-label (sigmoid) classifiers: losses, teacher annealing, the
student network and the per-batch objective ``trainer.fit`` calls.

Every head is a set of independent sigmoid labels, so the soft target of a label is the teacher's
Bernoulli probability ``sigmoid(teacher_logit / T)`` and the distillation loss is the *binary*
KL divergence per label, ``KL(p || q) = BCE(q; p) - H(p)``: the same gradient as soft-target BCE
(Hinton et al. 2015, with sigmoids instead of one softmax), but zero when the student matches the
teacher. It is multiplied by ``T**2`` so its gradient keeps its scale as ``T`` changes.

Teacher annealing (Clark et al. 2019, "BAM!"): on a labelled row the target moves from the
teacher's prediction to the gold label over training, ``target = λ·gold + (1 - λ)·teacher`` with
``λ`` rising linearly from 0 at the first step to 1 at the last. BCE is linear in its target, so
this equals ``λ·BCE(gold) + (1 - λ)·BCE(teacher)``. The annealed target is compared at temperature
1 (a gold label is a temperature-1 target); rows without a gold label (NaN: the unlabelled sample,
or the information head on rows outside its task) keep the teacher's target.

Intermediate layers (TinyBERT-style, Jiao et al. 2020): the output of each student layer (after
its feed-forward block and LayerNorm, i.e. the layer's hidden states) against the mapped teacher
layer, and optionally the final [CLS] state. Mean squared error by default; ``kl`` compares the
softmax over the hidden dimension of each token, an alternative without a scale to tune. The
student built by ``student_from_teacher`` has the teacher's width, so no projection is needed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

IntermediateLoss = Literal["mse", "kl"]


# ---------------------------------------------------------------------------------------------- losses
def soft_targets(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The teacher's per-label probabilities at ``temperature``: ``sigmoid(logits / T)``."""
    _check_temperature(temperature)
    return torch.sigmoid(teacher_logits.float() / temperature)


def binary_kl_with_logits(student_logits: torch.Tensor, target_probabilities: torch.Tensor) -> torch.Tensor:
    """Element-wise ``KL(Bernoulli(p) || Bernoulli(sigmoid(z)))`` = BCE-with-logits(z; p) - H(p), ≥ 0."""
    target = target_probabilities.float()
    cross_entropy = nn.functional.binary_cross_entropy_with_logits(student_logits.float(), target, reduction="none")
    # xlogy gives 0·log 0 = 0, so hard (0/1) targets have zero entropy instead of NaN
    entropy = -(torch.special.xlogy(target, target) + torch.special.xlogy(1 - target, 1 - target))
    return cross_entropy - entropy


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean binary KL between teacher and student at ``temperature``, times ``T**2`` (one head)."""
    targets = soft_targets(teacher_logits, temperature)
    return binary_kl_with_logits(student_logits.float() / temperature, targets).mean() * temperature**2


def annealed_targets(gold: torch.Tensor, teacher_probabilities: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight·gold + (1 - weight)·teacher``; where ``gold`` is NaN (no label) the teacher's target.

    ``weight`` (λ) = 0 gives exactly the teacher's probabilities, 1 exactly the gold labels.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the annealing weight must be in [0, 1], got {weight}")
    teacher = teacher_probabilities.float()
    gold = gold.to(teacher.device).float()
    known = ~torch.isnan(gold)
    if weight == 0.0:
        mixed = teacher
    elif weight == 1.0:
        mixed = gold
    else:
        mixed = weight * gold + (1.0 - weight) * teacher
    return torch.where(known, mixed, teacher)


def annealing_weight(step: int, total_steps: int) -> float:
    """λ of teacher annealing at optimisation ``step`` (0-based) of ``total_steps``: 0 at the first
    step, 1 at the last, linear between; a function of the step alone, so a resumed run continues it."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if total_steps == 1:
        return 1.0
    return min(1.0, max(0.0, step / (total_steps - 1)))


def hidden_state_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    kind: IntermediateLoss = "mse",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Distance between two (batch, tokens, hidden) states, averaged over the real tokens.

    ``mse``: mean squared difference per hidden unit. ``kl``: KL(softmax(teacher/T) || softmax(student/T))
    over the hidden dimension of each token, times ``T**2``.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student states {tuple(student.shape)} and teacher states {tuple(teacher.shape)} differ")
    student, teacher = student.float(), teacher.float()
    if kind == "mse":
        per_token = (student - teacher).pow(2).mean(dim=-1)
    elif kind == "kl":
        _check_temperature(temperature)
        log_student = nn.functional.log_softmax(student / temperature, dim=-1)
        log_teacher = nn.functional.log_softmax(teacher / temperature, dim=-1)
        per_token = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1) * temperature**2
    else:
        raise ValueError(f"intermediate loss must be 'mse' or 'kl', got {kind!r}")
    if attention_mask is None or per_token.ndim == 1:
        return per_token.mean()
    mask = attention_mask.to(per_token.device, per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def cls_loss(
    student: torch.Tensor, teacher: torch.Tensor, *, kind: IntermediateLoss = "mse", temperature: float = 1.0
) -> torch.Tensor:
    """Distance between the final [CLS] (first-token) states of two (batch, tokens, hidden) tensors."""
    return hidden_state_loss(student[:, 0], teacher[:, 0], kind=kind, temperature=temperature)


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """For student layer ``j`` (1-based), the teacher layer it learns from: evenly spaced, last to last
    (6 of 12: 2, 4, 6, 8, 10, 12). Layer numbers index ``hidden_states`` (0 is the embeddings)."""
    return [index + 1 for index in evenly_spaced_layers(student_layers, teacher_layers)]


def evenly_spaced_layers(count: int, total: int) -> list[int]:
    """``count`` 0-based layer indices of ``total``, evenly spaced and ending with the top layer."""
    if not 1 <= count <= total:
        raise ValueError(f"cannot keep {count} of {total} layers")
    return [math.ceil((index + 1) * total / count) - 1 for index in range(count)]


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")


# ---------------------------------------------------------------------------------------------- student
def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer layers of a classifier's BERT-like encoder (``encoder.encoder.layer``)."""
    layers = getattr(getattr(getattr(model, "encoder", None), "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"{type(model).__name__} has no BERT-like encoder (model.encoder.encoder.layer); "
            "layer selection and intermediate distillation support BERT/RoBERTa-style encoders"
        )
    return layers


def resolve_layers(layers: Sequence[int] | int | None, total: int) -> list[int]:
    """The 0-based teacher layers a student keeps: all (None), ``n`` evenly spaced (an int), or the
    given indices (sorted, distinct, in range)."""
    if layers is None:
        return list(range(total))
    if isinstance(layers, int):
        return evenly_spaced_layers(layers, total)
    chosen = list(layers)
    if not chosen:
        raise ValueError("a student needs at least one layer")
    if sorted(set(chosen)) != chosen or chosen[0] < 0 or chosen[-1] >= total:
        raise ValueError(f"layer indices must be increasing, distinct and in 0..{total - 1}, got {chosen}")
    return chosen


def student_from_teacher(teacher: nn.Module, layers: Sequence[int] | int | None = None) -> nn.Module:
    """A copy of ``teacher`` (heads, embeddings, feature statistics included) keeping only the encoder
    ``layers`` (see ``resolve_layers``); its config's ``num_hidden_layers`` is updated, so
    ``save_classifier``/``load_classifier`` and the ONNX export work unchanged."""
    student = copy.deepcopy(teacher)
    kept = resolve_layers(layers, len(encoder_layers(teacher)))
    source = encoder_layers(student)
    selected = nn.ModuleList([source[index] for index in kept])
    for position, layer in enumerate(selected):
        attention = getattr(getattr(layer, "attention", None), "self", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = position  # the cache slot of the layer, by position
    student.encoder.encoder.layer = selected  # type: ignore[union-attr]
    student.encoder.config.num_hidden_layers = len(kept)  # type: ignore[union-attr]
    return student


@contextmanager
def captured_hidden_states(model: nn.Module) -> Iterator[list[tuple[torch.Tensor, ...]]]:
    """Within the block, every forward of ``model`` appends its encoder's ``hidden_states``
    (embeddings, then each layer's output) to the yielded list; the config is restored after."""
    encoder: Any = getattr(model, "encoder")  # noqa: B009 - every classifier holds one
    captured: list[tuple[torch.Tensor, ...]] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(tuple(output.hidden_states))

    previous = encoder.config.output_hidden_states
    encoder.config.output_hidden_states = True
    handle = encoder.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()
        encoder.config.output_hidden_states = previous


# ---------------------------------------------------------------------------------------------- objective
@dataclass
class DistillationObjective:
    """The per-batch loss of a distillation run (what ``trainer.fit`` calls as its ``objective``).

    ``teacher_logits[h]`` holds the precomputed teacher logits of head ``h`` for every training row
    (row order of the training set). Per head and element: rows with a gold label (not NaN) learn
    the annealed target at temperature 1 with BCE (``pos_weight`` applied, as in label training)
    when ``annealing``; every other element learns the teacher's soft target with the binary KL at
    ``temperature``. Without ``annealing`` every element learns the soft target (plain KD). Each
    head adds the mean over its elements. With ``intermediate`` set, ``teacher`` (the network) runs
    on the batch without gradients and the layer (and [CLS]) losses are added, times
    ``intermediate_weight``.
    """

    teacher_logits: Sequence[np.ndarray]
    temperature: float = 2.0
    annealing: bool = True
    intermediate: Literal["none", "ffn", "ffn+cls"] = "none"
    intermediate_loss: IntermediateLoss = "mse"
    intermediate_weight: float = 1.0
    teacher: nn.Module | None = None
    student_to_teacher_layers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        if self.intermediate != "none" and (self.teacher is None or not self.student_to_teacher_layers):
            raise ValueError("intermediate-layer distillation needs the teacher network and a layer map")

    def prepare(self, device: torch.device) -> None:
        if self.teacher is not None:
            self.teacher.to(device).eval()

    def __call__(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        targets: Sequence[torch.Tensor],
        indices: np.ndarray,
        *,
        step: int,
        total_steps: int,
        pos_weights: Sequence[torch.Tensor | None],
    ) -> torch.Tensor:
        weight = annealing_weight(step, total_steps) if self.annealing else 0.0
        use_layers = self.intermediate != "none"
        if use_layers:
            with captured_hidden_states(model) as student_states:
                outputs = _as_tuple(model(**inputs))
        else:
            outputs = _as_tuple(model(**inputs))
        total = torch.zeros((), device=outputs[0].device)
        for head, (logits, gold, pos_weight) in enumerate(zip(outputs, targets, pos_weights, strict=True)):
            teacher_logits = torch.from_numpy(self.teacher_logits[head][indices]).to(logits.device)
            total = total + self.head_loss(logits, gold.to(logits.device), teacher_logits, weight, pos_weight)
        if use_layers:
            assert self.teacher is not None
            with torch.no_grad(), captured_hidden_states(self.teacher) as teacher_states:
                self.teacher(**inputs)
            total = total + self.intermediate_weight * self.layer_loss(
                student_states[-1], teacher_states[-1], inputs["attention_mask"]
            )
        return total

    def head_loss(
        self,
        student_logits: torch.Tensor,
        gold: torch.Tensor,
        teacher_logits: torch.Tensor,
        weight: float,
        pos_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """Mean over one head's elements (see the class docstring)."""
        temperature = self.temperature
        soft = binary_kl_with_logits(student_logits.float() / temperature, soft_targets(teacher_logits, temperature))
        soft = soft * temperature**2
        if not self.annealing:
            return soft.mean()
        labelled = ~torch.isnan(gold)
        target = annealed_targets(gold, soft_targets(teacher_logits, 1.0), weight)
        supervised = nn.functional.binary_cross_entropy_with_logits(
            student_logits.float(), target, pos_weight=pos_weight, reduction="none"
        )
        return torch.where(labelled, supervised, soft).mean()

    def layer_loss(
        self,
        student_states: Sequence[torch.Tensor],
        teacher_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Mean over the mapped layers of the hidden-state loss, plus the [CLS] loss with ``ffn+cls``."""
        kind = self.intermediate_loss
        layers = [
            hidden_state_loss(student_states[j + 1], teacher_states[t], attention_mask, kind=kind)
            for j, t in enumerate(self.student_to_teacher_layers)
        ]
        loss = torch.stack(layers).mean()
        if self.intermediate == "ffn+cls":
            loss = loss + cls_loss(student_states[-1], teacher_states[-1], kind=kind)
        return loss


def _as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)
