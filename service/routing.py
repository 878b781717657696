"""The hierarchy: which models run on a comment and how their outputs become its labels.

The rule (also in docs/serving.md):

1. The emotion bundle runs on every comment. Its *top label* is the most probable main label among
   those that clear their threshold in the bundle (``others`` only when no other label clears its
   threshold), or the most probable main label when none clears its threshold (ties: the first in
   the bundle's label order). So ``label`` is always one of ``labels`` when ``labels`` is not empty,
   also with per-class thresholds tuned on validation.
2. A comment whose top label is one of ``routed_labels`` (default ``others`` and ``social``) also
   goes to the information bundle, with its five text features. When the emotion bundle carries the
   information head itself (a joint bundle, ``service.bundle.carries_information_head``) there is no
   information bundle: the routed comment's information probability is that head's output from the
   same emotion pass (no second model call), and the route names only the emotion bundle.
3. The comment is ``information`` when the information probability is at least the threshold:
   the request's ``information_threshold`` if given, else its mode's (precision 0.8, recall 0.3,
   both settings). Otherwise its label stays the top label. Comments not routed have no
   information probability (null), with either bundle shape.
4. ``subcategory``: the sub-category with the highest probability on the emotion bundle's ``sub``
   head among the children of the final label. The information head has no sub-categories, so an
   ``information`` decision takes the emotion bundle's best information sub-category. Null when
   the emotion bundle has no ``sub`` head.
5. ``labels``: every main label whose emotion probability clears that label's threshold in the
   bundle, except ``information``, which is decided by the information head when the comment was
   routed (step 3) and by the ``main`` head's own threshold when it was not. As in the training labels
   (``training.taxonomy.normalise_labels``), ``others`` is dropped when another label is present.
   In schema order; may be empty when nothing clears its threshold (``label`` always has a value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.bundle import BundleError, BundleMetadata, Head, carries_information_head, information_head
from service.model import Prediction
from service.settings import Mode, Settings
from service.taxonomy import INFORMATION, MAIN_LABELS, OTHERS, PARENT_OF, others_yields

MAIN_HEAD = "main"
SUB_HEAD = "sub"


class Classifier(Protocol):
    """What the router needs from a model: its metadata and batched probabilities per comment."""

    @property
    def metadata(self) -> BundleMetadata: ...

    async def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


@dataclass(frozen=True)
class RoutingPolicy:
    routed_labels: frozenset[str]
    thresholds: Mapping[str, float]
    default_mode: Mode

    def threshold(self, mode: Mode | None, override: float | None = None) -> float:
        """The information threshold of a request: its override, else its mode's (the default mode's)."""
        return override if override is not None else self.thresholds[mode or self.default_mode]

    @classmethod
    def from_settings(cls, settings: Settings) -> RoutingPolicy:
        return cls(
            routed_labels=frozenset(settings.routed_labels),
            thresholds={"precision": settings.precision_threshold, "recall": settings.recall_threshold},
            default_mode=settings.default_mode,
        )


@dataclass(frozen=True)
class Decision:
    """The outcome for one comment (see the module docstring for how each field is derived)."""

    label: str
    subcategory: str | None
    labels: list[str]
    route: list[str]
    information_probability: float | None
    scores: dict[str, dict[str, dict[str, float]]] | None = None


@dataclass(frozen=True)
class RoutedBatch:
    decisions: list[Decision]
    mode: Mode
    information_threshold: float
    models: dict[str, str] = field(default_factory=dict)


class DecisionObserver(Protocol):
    """Told about every routed batch (the service's metrics count final labels and routed comments)."""

    def decided(self, batch: RoutedBatch) -> None: ...


def check_bundles(emotion: BundleMetadata, information: BundleMetadata | None, policy: RoutingPolicy) -> None:
    """Refuse bundles the hierarchy cannot use; the message names the bundle.json at fault.

    ``information`` is None exactly when the emotion bundle carries the information head (a joint bundle)."""
    emotion_file = f"{emotion.name}/bundle.json"
    if emotion.task != "emotion":
        raise BundleError(emotion_file, f"the emotion bundle has task {emotion.task!r}, expected 'emotion'")
    if information is None and not carries_information_head(emotion):
        raise BundleError(
            emotion_file,
            "the emotion bundle has no 'information' head and no information bundle was given: "
            "the hierarchy needs one of them",
        )
    if information is not None and carries_information_head(emotion):
        raise BundleError(
            f"{information.name}/bundle.json",
            f"the emotion bundle {emotion.name!r} carries the information head; an information bundle must not "
            "be given as well (one model decides 'information')",
        )
    if information is not None and information.task != "information":
        raise BundleError(f"{information.name}/bundle.json", f"the information bundle has task {information.task!r}")
    main = emotion.head(MAIN_HEAD)
    unknown = [label for label in main.labels if label not in MAIN_LABELS]
    if unknown:
        raise BundleError(emotion_file, f"main head has labels outside the schema: {unknown}")
    missing = sorted(policy.routed_labels - set(main.labels))
    if missing:
        raise BundleError(
            emotion_file, f"main head lacks the routed labels {missing} (DANMAKU_ROUTED_LABELS); it has {main.labels}"
        )
    if any(head.name == SUB_HEAD for head in emotion.heads):
        orphans = [label for label in emotion.head(SUB_HEAD).labels if label not in PARENT_OF]
        if orphans:
            raise BundleError(emotion_file, f"sub head has labels outside the schema: {orphans}")


def _head_scores(metadata: BundleMetadata, prediction: Prediction) -> dict[str, dict[str, float]]:
    return {
        head.name: {label: float(value) for label, value in zip(head.labels, prediction[head.name], strict=True)}
        for head in metadata.heads
    }


def top_label(main: Head, probabilities: np.ndarray) -> str:
    """The emotion model's top main label (rule 1 of the module docstring)."""
    clearing = [
        (float(probability), -index, name)
        for index, (name, probability) in enumerate(zip(main.labels, probabilities, strict=True))
        if probability >= main.threshold(name)
    ]
    candidates = [entry for entry in clearing if entry[2] != OTHERS] or clearing
    if not candidates:
        return main.labels[int(np.argmax(probabilities))]
    return max(candidates)[2]


def final_label(top: str, information_probability: float | None, threshold: float) -> str:
    """Rule 3: ``information`` when the comment was routed (``information_probability`` not None) and
    that probability reaches the threshold, else the emotion model's top label."""
    return INFORMATION if reaches(information_probability, threshold) else top


def reaches(information_probability: float | None, threshold: float) -> bool:
    return information_probability is not None and information_probability >= threshold


def decide(
    emotion: Prediction,
    emotion_metadata: BundleMetadata,
    top: str,
    information_probability: float | None,
    threshold: float,
) -> tuple[str, str | None, list[str]]:
    """(label, subcategory, labels) of one comment whose ``top_label`` is ``top``;
    ``information_probability`` None when not routed."""
    main = emotion_metadata.head(MAIN_HEAD)
    main_probabilities = emotion[MAIN_HEAD]
    label = final_label(top, information_probability, threshold)
    is_information = reaches(information_probability, threshold)

    chosen = {
        name
        for name, probability in zip(main.labels, main_probabilities, strict=True)
        if name != INFORMATION and probability >= main.threshold(name)
    }
    if information_probability is None:
        if INFORMATION in main.labels:
            index = main.labels.index(INFORMATION)
            if main_probabilities[index] >= main.threshold(INFORMATION):
                chosen.add(INFORMATION)
    elif is_information:
        chosen.add(INFORMATION)
    labels = [name for name in MAIN_LABELS if name in others_yields(chosen)]

    subcategory: str | None = None
    sub = next((head for head in emotion_metadata.heads if head.name == SUB_HEAD), None)
    if sub is not None:
        children = [
            (float(probability), name)
            for name, probability in zip(sub.labels, emotion[SUB_HEAD], strict=True)
            if PARENT_OF.get(name) == label
        ]
        if children:
            subcategory = max(children, key=lambda pair: pair[0])[1]
    return label, subcategory, labels


class Router:
    """Runs the emotion model on every comment and the information model on the routed ones; with a joint
    emotion bundle (``information`` None) the routed ones are decided by its own information head."""

    def __init__(
        self,
        emotion: Classifier,
        information: Classifier | None,
        policy: RoutingPolicy,
        observer: DecisionObserver | None = None,
    ) -> None:
        check_bundles(emotion.metadata, None if information is None else information.metadata, policy)
        self.emotion = emotion
        self.information = information
        self.policy = policy
        self.observer = observer

    @property
    def deciding_information(self) -> Classifier:
        """The model whose information head decides routed comments: the information model, else the
        (joint) emotion model."""
        return self.information if self.information is not None else self.emotion

    @property
    def versions(self) -> dict[str, str]:
        models = (self.emotion,) if self.information is None else (self.emotion, self.information)
        return {model.metadata.name: model.metadata.version for model in models}

    async def classify(
        self,
        texts: Sequence[str],
        *,
        mode: Mode | None = None,
        information_threshold: float | None = None,
        return_scores: bool = False,
    ) -> RoutedBatch:
        mode = mode or self.policy.default_mode
        threshold = self.policy.threshold(mode, information_threshold)
        emotion_meta = self.emotion.metadata
        main = emotion_meta.head(MAIN_HEAD)

        emotion_predictions = await self.emotion.predict(texts)
        tops = [top_label(main, prediction[MAIN_HEAD]) for prediction in emotion_predictions]
        routed = [index for index, top in enumerate(tops) if top in self.policy.routed_labels]
        information_predictions: dict[int, Prediction] = {}
        if self.information is None:
            information_predictions = {index: emotion_predictions[index] for index in routed}
        elif routed:
            answers = await self.information.predict([texts[index] for index in routed])
            information_predictions = dict(zip(routed, answers, strict=True))

        information_meta = self.deciding_information.metadata
        head = information_head(information_meta)
        decisions = []
        for index, emotion_prediction in enumerate(emotion_predictions):
            information_prediction = information_predictions.get(index)
            probability = None if information_prediction is None else float(information_prediction[head.name][0])
            label, subcategory, labels = decide(emotion_prediction, emotion_meta, tops[index], probability, threshold)
            route = [emotion_meta.name]
            scores = None
            if return_scores:
                scores = {emotion_meta.name: _head_scores(emotion_meta, emotion_prediction)}
            if information_prediction is not None and self.information is not None:
                route.append(information_meta.name)
                if scores is not None:
                    scores[information_meta.name] = _head_scores(information_meta, information_prediction)
            decisions.append(Decision(label, subcategory, labels, route, probability, scores))
        batch = RoutedBatch(decisions, mode, threshold, self.versions)
        if self.observer is not None:
            self.observer.decided(batch)
        return batch
