from __future__ import annotations

from training.taxonomy import normalise_labels


def test_aliases_duplicates_and_order() -> None:
    assert normalise_labels(["social", "Other", "Emotion_Positive", "social"]) == (
        ("emotions_positive", "social"),
        (),
        (),
    )


def test_subcategory_brings_parent_and_moves_out_of_main_labels() -> None:
    labels, subs, unknown = normalise_labels(["admiration"], ["curiosity", "bogus"])
    assert labels == ("emotions_positive", "social")
    assert subs == ("admiration", "curiosity")
    assert unknown == ("bogus",)


def test_empty_or_unknown_becomes_others() -> None:
    assert normalise_labels([], []) == (("others",), ("other",), ())
    assert normalise_labels(["spam"]) == (("others",), ("other",), ("spam",))
    assert normalise_labels(["others", "joy"]) == (("emotions_positive",), ("joy",), ())
    assert normalise_labels(["other"], ["other"]) == (("others",), ("other",), ())


def test_others_yields_to_a_real_label_in_training_and_serving_alike() -> None:
    from service.taxonomy import others_yields

    assert others_yields({"others", "social"}) == {"social"} and others_yields({"others"}) == {"others"}
    assert normalise_labels(["others", "social"], ["other", "interaction"])[:2] == (("social",), ("interaction",))
