"""The training loop shared by BERT v1, BERT v2 and the information model.

Multi-label BCE with logits summed over heads (optionally class-weighted), AdamW with linear
warm-up and decay, gradient clipping, mixed precision (bf16, else fp16 with loss scaling) on CUDA
only, seeded data order and dropout.

Resume: after every epoch ``last.pt`` (model, optimizer, scheduler, loss scaler, every RNG
state, epoch, history, early-stopping state) is written atomically; a new call with the same
``fingerprint`` continues after the last finished epoch, so a killed run never redoes one. A
checkpoint with another fingerprint (other data or settings) is ignored. With a validation set,
``best.pt`` keeps the weights of the best epoch and training stops after ``patience`` epochs
without improvement; the returned model holds the best weights.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from service.activations import sigmoid
from training.modeling.batching import EncodedDataset, collate, length_bucketed_batches
from training.modeling.settings import TrainingSettings

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float | None = None
    validation_score: float | None = None


@dataclass
class FitResult:
    """What a ``fit`` call did; ``epochs_run`` lists only the epochs trained in this call."""

    history: list[EpochRecord]
    epochs_run: list[int]
    best_epoch: int
    best_score: float | None
    stopped_early: bool
    device: str
    precision: str
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    if device.type != "cuda":
        return "fp32"  # autocast on CPU is slower than fp32 for these models and changes results
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(payload: Any, path: Path) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    torch.save(payload, staging)
    os.replace(staging, path)


def multi_label_loss(
    outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], pos_weights: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """Sum over heads of the mean BCE-with-logits (``pos_weight`` per label where given).

    A NaN target means "no label for this row on this head" (e.g. the information head of the joint
    model on purely emotional rows, or a sub-category head on a source that has none): it is left
    out of that head's mean; a head with no labelled element in the batch adds nothing.
    """
    total = torch.zeros((), device=outputs[0].device)
    for logits, target, weight in zip(outputs, targets, pos_weights, strict=True):
        target = target.to(logits.device)
        known = ~torch.isnan(target)
        if bool(known.all()):
            total = total + nn.functional.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=weight)
            continue
        if not bool(known.any()):
            continue
        losses = nn.functional.binary_cross_entropy_with_logits(
            logits.float(), torch.where(known, target, torch.zeros_like(target)), pos_weight=weight, reduction="none"
        )
        total = total + losses[known].mean()
    return total


class BatchObjective(Protocol):
    """The loss of one training batch, given the model (it runs the forward pass itself, so it can
    capture hidden states) and where the batch stands in the run: ``step`` (0-based, over all epochs)
    of ``total_steps``, a function of the epoch and the batch index only, so a resumed run continues
    any schedule built on it. ``indices`` are the batch's rows in the training set."""

    def prepare(self, device: torch.device) -> None: ...

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
    ) -> torch.Tensor: ...


class LabelObjective:
    """The default objective: ``multi_label_loss`` against the batch's targets."""

    def prepare(self, device: torch.device) -> None:
        pass

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
        outputs = _as_tuple(model(**inputs))
        return multi_label_loss(outputs, [target.to(outputs[0].device) for target in targets], pos_weights)


def positive_class_weights(targets: np.ndarray, *, cap: float) -> np.ndarray:
    """``pos_weight`` per label: negatives / positives, capped at ``cap`` (and at ``cap`` when unseen).
    NaN targets (no label) count as neither."""
    positives = np.nansum(targets, axis=0)
    negatives = (~np.isnan(targets)).sum(axis=0) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positives > 0, negatives / np.maximum(positives, 1.0), cap)
    return np.clip(ratio, 1.0 / cap, cap).astype(np.float32)


def _as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def predict_logits(
    model: nn.Module,
    dataset: EncodedDataset,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
    description: str = "predict",
) -> list[np.ndarray]:
    """Logits per head for every row of ``dataset``, in dataset order (batches length-sorted)."""
    model.eval()
    batches = length_bucketed_batches(dataset.lengths(), batch_size)
    chunks: list[list[np.ndarray]] = []
    order: list[np.ndarray] = []
    with torch.no_grad():
        for indices in tqdm(batches, desc=description, unit="batch", disable=not progress):
            inputs, _ = collate(dataset, indices)
            with _autocast(device, precision):
                outputs = _as_tuple(model(**{name: tensor.to(device) for name, tensor in inputs.items()}))
            chunks.append([output.float().cpu().numpy() for output in outputs])
            order.append(indices)
    if not chunks:
        return [np.zeros((0, target.shape[1]), dtype=np.float32) for target in dataset.targets]
    inverse = np.argsort(np.concatenate(order))
    return [np.concatenate([chunk[head] for chunk in chunks])[inverse] for head in range(len(chunks[0]))]


def _autocast(device: torch.device, precision: str) -> Any:
    if device.type == "cuda" and precision in ("bf16", "fp16"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return torch.autocast("cpu", enabled=False)


def macro_f1(targets: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> float:
    """Macro-F1 over the labels present in ``targets`` (labels absent there are left out)."""
    predicted = probabilities >= threshold
    truth = targets >= 0.5
    present = truth.any(axis=0)
    if not present.any():
        return 0.0
    true_positive = (predicted & truth).sum(axis=0)
    precision_denominator = predicted.sum(axis=0)
    recall_denominator = truth.sum(axis=0)
    f1 = np.where(
        precision_denominator + recall_denominator > 0,
        2 * true_positive / np.maximum(precision_denominator + recall_denominator, 1),
        0.0,
    )
    return float(f1[present].mean())


def _optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms; the encoder at ``learning_rate``, everything
    else (heads, feature projection) at ``head_learning_rate``."""
    head_rate = settings.head_learning_rate or settings.learning_rate
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = not (parameter.ndim < 2 or "norm" in name.lower())
        groups.setdefault((name.startswith("encoder."), decays), []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": settings.learning_rate if in_encoder else head_rate,
                "weight_decay": settings.weight_decay if decays else 0.0,
            }
            for (in_encoder, decays), params in sorted(groups.items())
        ],
        lr=settings.learning_rate,
    )


def _linear_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _evaluate(
    model: nn.Module,
    validation: EncodedDataset,
    pos_weights: Sequence[torch.Tensor | None],
    settings: TrainingSettings,
    device: torch.device,
    precision: str,
) -> tuple[float, float]:
    logits = predict_logits(
        model, validation, batch_size=settings.eval_batch_size, device=device, precision=precision, progress=False
    )
    with torch.no_grad():
        loss = multi_label_loss(
            [torch.from_numpy(head) for head in logits],
            [torch.from_numpy(target) for target in validation.targets],
            [None if weight is None else weight.cpu() for weight in pos_weights],
        )
    return float(loss), macro_f1(validation.targets[0], sigmoid(logits[0]))


def fit(
    model: nn.Module,
    train: EncodedDataset,
    *,
    settings: TrainingSettings,
    seed: int,
    checkpoint_dir: Path,
    fingerprint: str,
    validation: EncodedDataset | None = None,
    pos_weights: Sequence[np.ndarray | None] | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
    objective: BatchObjective | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (resuming from ``checkpoint_dir`` when it holds this run's state).

    ``objective`` computes each batch's loss (default ``LabelObjective``: BCE against the targets;
    ``training.modeling.distillation.DistillationObjective`` for a student). Validation always
    scores against ``validation``'s own targets."""
    if len(train) == 0:
        raise ValueError("the training set is empty")
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    weights = [
        None if weight is None else torch.as_tensor(weight, dtype=torch.float32, device=device)
        for weight in (pos_weights or [None] * len(train.targets))
    ]
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    optimizer = _optimizer(model, settings)
    scheduler = _linear_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    lower_is_better = settings.monitor == "loss"
    objective = objective or LabelObjective()
    objective.prepare(device)
    # the same count every epoch (windows of BUCKET_BATCHES batches, the last one partial)
    batches_per_epoch = len(length_bucketed_batches(train.lengths(), settings.batch_size, rng=np.random.default_rng(0)))
    objective_steps = batches_per_epoch * settings.epochs

    history: list[EpochRecord] = []
    start_epoch = 1
    best_score: float | None = None
    best_epoch = 0
    bad_epochs = 0
    stopped_early = False
    last_path = checkpoint_dir / LAST_CHECKPOINT
    best_path = checkpoint_dir / BEST_WEIGHTS
    seed_everything(seed)
    if last_path.is_file():
        state = torch.load(last_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            _restore_rng(state["rng"])
            history = [EpochRecord(**record) for record in state["history"]]
            start_epoch = int(state["epoch"]) + 1
            best_score, best_epoch = state["best_score"], int(state["best_epoch"])
            bad_epochs, stopped_early = int(state["bad_epochs"]), bool(state["stopped_early"])
            logger.info("resuming %s after epoch %d", checkpoint_dir, start_epoch - 1)
        else:
            logger.warning("%s belongs to another run (data or settings changed); starting afresh", last_path)
            best_path.unlink(missing_ok=True)

    epochs_run: list[int] = []
    for epoch in range(start_epoch, settings.epochs + 1):
        if stopped_early:
            break
        model.train()
        batches = length_bucketed_batches(
            train.lengths(), settings.batch_size, rng=np.random.default_rng([seed, epoch])
        )
        running = 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}/{settings.epochs}", unit="batch", disable=not progress)
        for step, indices in enumerate(bar, start=1):
            inputs, targets = collate(train, indices)
            with _autocast(device, precision):
                loss = objective(
                    model,
                    {name: tensor.to(device) for name, tensor in inputs.items()},
                    targets,
                    indices,
                    step=(epoch - 1) * batches_per_epoch + step - 1,
                    total_steps=objective_steps,
                    pos_weights=weights,
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}")
        record = EpochRecord(epoch=epoch, train_loss=running / max(1, len(batches)))
        if validation is not None and len(validation):
            record.validation_loss, record.validation_score = _evaluate(
                model, validation, weights, settings, device, precision
            )
            monitored = record.validation_loss if lower_is_better else record.validation_score
            improved = best_score is None or (monitored < best_score if lower_is_better else monitored > best_score)
            if improved:
                best_score, best_epoch, bad_epochs = monitored, epoch, 0
                _atomic_save(model.state_dict(), best_path)
            else:
                bad_epochs += 1
                stopped_early = 0 < settings.early_stopping_patience <= bad_epochs
            logger.info(
                "epoch %d: train loss %.4f, validation loss %.4f, validation %s %.4f%s",
                epoch,
                record.train_loss,
                record.validation_loss,
                settings.monitor,
                record.validation_score,
                " (early stop)" if stopped_early else "",
            )
        else:
            best_epoch = epoch
            logger.info("epoch %d: train loss %.4f", epoch, record.train_loss)
        history.append(record)
        epochs_run.append(epoch)
        _atomic_save(
            {
                "fingerprint": fingerprint,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": _rng_state(),
                "history": [vars(item) for item in history],
                "best_score": best_score,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "stopped_early": stopped_early,
            },
            last_path,
        )
        if on_epoch_end is not None:
            on_epoch_end(record)

    if best_path.is_file() and validation is not None:
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    return FitResult(
        history=history,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        best_score=best_score,
        stopped_early=stopped_early,
        device=str(device),
        precision=precision,
    )
