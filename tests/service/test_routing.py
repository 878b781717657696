"""The hierarchy, with models whose outputs are controlled (``tests/fixtures/fake_models.py``)."""

from __future__ import annotations

import pytest

from service.bundle import BundleError
from service.routing import Router, RoutingPolicy
from service.settings import Settings
from tests.fixtures.fake_models import (
    FakeClassifier,
    emotion_metadata,
    emotion_prediction,
    information_metadata,
    information_prediction,
    joint_metadata,
    joint_prediction,
)

POSITIVE = "太好听了"
OTHERS = "打卡"
SOCIAL = "有人吗"
QUESTION = "这首曲子的作者是谁"
OTHERS_AND_SOCIAL = "来了来了"

EMOTION_TABLE = {
    # Top label emotions_positive: never routed, even though the information model would say yes.
    POSITIVE: emotion_prediction({"emotions_positive": 0.9, "information": 0.7}, {"admiration": 0.8, "joy": 0.6}),
    OTHERS: emotion_prediction({"others": 0.7, "information": 0.4}, {"other": 0.9, "external_sources": 0.4}),
    SOCIAL: emotion_prediction(
        {"social": 0.6, "emotions_positive": 0.55, "information": 0.55},
        {"social_presence": 0.7, "video_relevant_remarks": 0.3},
    ),
    # `others` is the most probable but `social` clears its threshold: the top label is `social`.
    OTHERS_AND_SOCIAL: emotion_prediction({"others": 0.8, "social": 0.6}, {"other": 0.9, "interaction": 0.7}),
    QUESTION: emotion_prediction({"others": 0.5}, {"other": 0.4, "domain_knowledge": 0.3, "situated_knowledge": 0.5}),
}
INFORMATION_TABLE = {
    POSITIVE: information_prediction(0.99),
    OTHERS: information_prediction(0.1),
    SOCIAL: information_prediction(0.5),
    QUESTION: information_prediction(0.85),
    OTHERS_AND_SOCIAL: information_prediction(0.2),
}


def make_router(settings: Settings | None = None) -> tuple[Router, FakeClassifier, FakeClassifier]:
    emotion = FakeClassifier(emotion_metadata(), EMOTION_TABLE)
    information = FakeClassifier(information_metadata(), INFORMATION_TABLE)
    router = Router(emotion, information, RoutingPolicy.from_settings(settings or Settings()))
    return router, emotion, information


async def test_a_comment_whose_top_label_is_not_routed_never_meets_the_information_model() -> None:
    router, emotion, information = make_router()
    batch = await router.classify([POSITIVE], mode="recall")
    (decision,) = batch.decisions
    assert information.calls == []
    assert emotion.calls == [[POSITIVE]]
    assert decision.route == ["emotion"]
    assert decision.information_probability is None
    assert decision.label == "emotions_positive"
    assert decision.subcategory == "admiration"
    # Not routed: the emotion model's own information score (0.7 >= 0.5) decides that label.
    assert decision.labels == ["information", "emotions_positive"]


async def test_precision_mode_needs_the_high_threshold() -> None:
    router, _, information = make_router()
    batch = await router.classify([POSITIVE, OTHERS, SOCIAL, QUESTION], mode="precision")
    labels = [decision.label for decision in batch.decisions]
    assert labels == ["emotions_positive", "others", "social", "information"]  # 0.1, 0.5 < 0.8 <= 0.85
    assert information.calls == [[OTHERS, SOCIAL, QUESTION]]  # only the routed ones, in order
    assert batch.information_threshold == 0.8
    assert [decision.information_probability for decision in batch.decisions] == [None, 0.1, 0.5, 0.85]
    question = batch.decisions[3]
    assert question.route == ["emotion", "information"]
    # The information model has no sub head: the emotion model's best information sub-category.
    assert question.subcategory == "situated_knowledge"
    assert question.labels == ["information"]
    others = batch.decisions[1]
    assert others.subcategory == "other"
    assert others.labels == ["others"]
    # Routed and refused by the information model: the emotion model's own information 0.55 does not count.
    assert batch.decisions[2].labels == ["emotions_positive", "social"]


async def test_recall_mode_takes_the_low_threshold() -> None:
    router, _, _ = make_router()
    batch = await router.classify([OTHERS, SOCIAL], mode="recall")
    assert [decision.label for decision in batch.decisions] == ["others", "information"]
    assert batch.information_threshold == 0.3
    social = batch.decisions[1]
    assert social.labels == ["information", "emotions_positive", "social"]
    assert social.subcategory == "video_relevant_remarks"  # best information child, not social_presence


async def test_the_request_override_beats_the_mode() -> None:
    router, _, _ = make_router()
    strict = await router.classify([SOCIAL, QUESTION], mode="recall", information_threshold=0.9)
    assert [decision.label for decision in strict.decisions] == ["social", "others"]
    lenient = await router.classify([OTHERS], mode="precision", information_threshold=0.05)
    assert lenient.decisions[0].label == "information"
    assert lenient.information_threshold == 0.05


async def test_thresholds_default_mode_and_routed_labels_come_from_settings() -> None:
    settings = Settings(precision_threshold=0.9, recall_threshold=0.4, default_mode="recall", routed_labels=["others"])
    router, _, information = make_router(settings)
    batch = await router.classify([SOCIAL, QUESTION])
    assert batch.mode == "recall" and batch.information_threshold == 0.4
    assert information.calls == [[QUESTION]]  # social is no longer routed
    assert [decision.label for decision in batch.decisions] == ["social", "information"]
    precise = await router.classify([QUESTION], mode="precision")
    assert precise.decisions[0].label == "others"  # 0.85 < 0.9


async def test_scores_cover_every_model_that_ran() -> None:
    router, _, _ = make_router()
    batch = await router.classify([POSITIVE, QUESTION], return_scores=True)
    positive, question = batch.decisions
    assert positive.scores is not None and set(positive.scores) == {"emotion"}
    assert positive.scores["emotion"]["main"]["emotions_positive"] == pytest.approx(0.9)
    assert question.scores is not None and question.scores["information"]["information"]["information"] == 0.85
    assert batch.models == {"emotion": "fake-emotion-7", "information": "fake-info-3"}
    plain = await router.classify([POSITIVE])
    assert plain.decisions[0].scores is None


async def test_per_label_thresholds_of_the_bundle_are_honoured() -> None:
    emotion = FakeClassifier(emotion_metadata(thresholds={"emotions_positive": 0.95}), EMOTION_TABLE)
    information = FakeClassifier(information_metadata(), INFORMATION_TABLE)
    router = Router(emotion, information, RoutingPolicy.from_settings(Settings()))
    batch = await router.classify([POSITIVE])
    # 0.9 no longer clears 0.95: the top label is the most probable label that clears its threshold.
    assert batch.decisions[0].labels == ["information"]
    assert batch.decisions[0].label == "information"
    assert batch.decisions[0].route == ["emotion"]


async def test_the_label_is_one_of_the_labels_others_yields_to_a_label_that_clears() -> None:
    router, _, information = make_router()
    batch = await router.classify([OTHERS_AND_SOCIAL])
    (decision,) = batch.decisions
    assert information.calls == [[OTHERS_AND_SOCIAL]]  # routed as `social`
    assert decision.label == "social"
    assert decision.subcategory == "interaction"
    assert decision.labels == ["social"]


async def test_nothing_clears_its_threshold_the_most_probable_label_is_the_label() -> None:
    emotion = FakeClassifier(emotion_metadata(thresholds={"others": 0.9}), EMOTION_TABLE)
    information = FakeClassifier(information_metadata(), INFORMATION_TABLE)
    router = Router(emotion, information, RoutingPolicy.from_settings(Settings()))
    batch = await router.classify([QUESTION], information_threshold=0.99)  # others 0.5 < 0.9, nothing else
    assert batch.decisions[0].label == "others"
    assert batch.decisions[0].labels == []
    assert batch.decisions[0].route == ["emotion", "information"]


async def test_no_sub_head_means_no_subcategory() -> None:
    emotion = FakeClassifier(emotion_metadata(with_sub=False), EMOTION_TABLE)
    information = FakeClassifier(information_metadata(), INFORMATION_TABLE)
    router = Router(emotion, information, RoutingPolicy.from_settings(Settings()))
    batch = await router.classify([POSITIVE])
    assert batch.decisions[0].subcategory is None


def test_bundles_the_hierarchy_cannot_use_are_refused() -> None:
    policy = RoutingPolicy.from_settings(Settings(routed_labels=["others", "chitchat"]))
    with pytest.raises(BundleError, match=r"emotion/bundle.json: main head lacks the routed labels \['chitchat'\]"):
        Router(FakeClassifier(emotion_metadata(), {}), FakeClassifier(information_metadata(), {}), policy)
    swapped = RoutingPolicy.from_settings(Settings())
    with pytest.raises(BundleError, match="task 'information', expected 'emotion'"):
        Router(FakeClassifier(information_metadata(), {}), FakeClassifier(emotion_metadata(), {}), swapped)


async def test_the_observer_counts_every_routed_batch_as_the_api_and_classify_file_do() -> None:
    from service.metrics import Metrics

    metrics = Metrics()
    emotion = FakeClassifier(emotion_metadata(), EMOTION_TABLE)
    information = FakeClassifier(information_metadata(), INFORMATION_TABLE)
    router = Router(emotion, information, RoutingPolicy.from_settings(Settings()), observer=metrics)
    await router.classify([POSITIVE, QUESTION, OTHERS], mode="precision")
    value = metrics.registry.get_sample_value
    assert value("danmaku_predictions_total", {"label": "information"}) == 1
    assert value("danmaku_predictions_total", {"label": "emotions_positive"}) == 1
    assert value("danmaku_predictions_total", {"label": "others"}) == 1
    assert value("danmaku_routed_comments_total", {"mode": "precision"}) == 2


# --- a joint emotion bundle: the information head on the same encoder, no information bundle ---------

JOINT_TABLE = {
    POSITIVE: joint_prediction({"emotions_positive": 0.9, "information": 0.7}, {"admiration": 0.8}, information=0.99),
    OTHERS: joint_prediction({"others": 0.7, "information": 0.4}, {"other": 0.9}, information=0.1),
    QUESTION: joint_prediction({"others": 0.5}, {"other": 0.4, "situated_knowledge": 0.5}, information=0.85),
}


def make_joint_router() -> tuple[Router, FakeClassifier]:
    emotion = FakeClassifier(joint_metadata(), JOINT_TABLE)
    return Router(emotion, None, RoutingPolicy.from_settings(Settings())), emotion


async def test_a_joint_bundle_decides_routed_comments_with_its_own_information_head() -> None:
    router, emotion = make_joint_router()
    batch = await router.classify([POSITIVE, OTHERS, QUESTION], mode="precision", return_scores=True)
    positive, others, question = batch.decisions
    assert emotion.calls == [[POSITIVE, OTHERS, QUESTION]]  # one model call, no second pass
    assert [decision.route for decision in batch.decisions] == [["emotion"]] * 3
    # Not routed: no information probability, even though the head says 0.99; main's own 0.7 gives the label.
    assert positive.information_probability is None
    assert positive.label == "emotions_positive" and positive.labels == ["information", "emotions_positive"]
    # Routed: the head's probability against the mode's threshold (0.1 < 0.8 <= 0.85).
    assert others.information_probability == pytest.approx(0.1) and others.label == "others"
    assert question.information_probability == pytest.approx(0.85) and question.label == "information"
    assert question.subcategory == "situated_knowledge" and question.labels == ["information"]
    assert question.scores is not None and set(question.scores) == {"emotion"}
    assert question.scores["emotion"]["information"] == {"information": pytest.approx(0.85)}
    assert batch.models == {"emotion": "fake-joint-5"}
    assert router.deciding_information is emotion


async def test_a_joint_bundle_honours_the_request_threshold_override() -> None:
    router, _ = make_joint_router()
    lenient = await router.classify([OTHERS], mode="precision", information_threshold=0.05)
    assert lenient.decisions[0].label == "information"
    strict = await router.classify([QUESTION], mode="recall", information_threshold=0.9)
    assert strict.decisions[0].label == "others"


def test_the_information_decision_needs_exactly_one_source() -> None:
    policy = RoutingPolicy.from_settings(Settings())
    with pytest.raises(BundleError, match=r"emotion/bundle.json: .*no 'information' head and no information bundle"):
        Router(FakeClassifier(emotion_metadata(), {}), None, policy)
    with pytest.raises(BundleError, match=r"information/bundle.json: .*carries the information head"):
        Router(FakeClassifier(joint_metadata(), {}), FakeClassifier(information_metadata(), {}), policy)
