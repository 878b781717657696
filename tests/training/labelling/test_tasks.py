"""Label Studio tasks and config: the pre-filled prediction, the controls, and what the reader makes of them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from training.labelling.tasks import (
    MAIN_CONTROL,
    SUB_CONTROL,
    TEXT_NAME,
    Pick,
    label_config_xml,
    predicted_choices,
    task,
)
from training.labelstudio import read_label_studio
from training.taxonomy import MAIN_LABELS, SUB_LABELS


def _pick(label: str, labels: tuple[str, ...], subcategory: str | None, uncertainty: float = 0.7) -> Pick:
    return Pick(
        comment_id="c1",
        text="前方高能",
        table="traffic.jsonl",
        row=3,
        duplicates=2,
        served_label=label,
        labels=labels,
        subcategory=subcategory,
        uncertainty=uncertainty,
    )


def test_predicted_choices() -> None:
    assert predicted_choices(_pick("social", ("social",), "interaction")) == (["social"], ["interaction"])
    # the served label joins the other labels returned; others only alone; a sub of a missing parent is left out
    assert predicted_choices(_pick("information", ("emotions_positive", "others"), "joy")) == (
        ["information", "emotions_positive"],
        ["joy"],
    )
    assert predicted_choices(_pick("others", (), "domain_knowledge")) == (["others"], [])


def test_task_layout() -> None:
    written = task(_pick("social", ("social",), "interaction", 0.75), versions={"emotion": "e1", "information": "i1"})
    assert written["data"][TEXT_NAME] == "前方高能"
    assert written["data"]["comment_id"] == "c1" and written["data"]["duplicates"] == 2
    prediction = written["predictions"][0]
    assert prediction["model_version"] == "emotion=e1 information=i1" and prediction["score"] == 0.25
    assert [(item["from_name"], item["to_name"], item["value"]["choices"]) for item in prediction["result"]] == [
        (MAIN_CONTROL, TEXT_NAME, ["social"]),
        (SUB_CONTROL, TEXT_NAME, ["interaction"]),
    ]
    json.dumps(written)  # JSON-ready


def test_config_controls_match_the_results() -> None:
    root = ElementTree.fromstring(label_config_xml())
    text = root.find("Text")
    assert text is not None and text.get("name") == TEXT_NAME and text.get("value") == f"${TEXT_NAME}"
    controls = {choices.get("name"): choices for choices in root.iter("Choices")}
    assert set(controls) == {MAIN_CONTROL, SUB_CONTROL}
    assert all(control.get("toName") == TEXT_NAME for control in controls.values())
    assert [c.get("value") for c in controls[MAIN_CONTROL]] == list(MAIN_LABELS)
    assert [c.get("value") for c in controls[SUB_CONTROL]] == list(SUB_LABELS)


def test_an_accepted_prediction_reads_back_as_the_served_labels(tmp_path: Path) -> None:
    written = task(_pick("information", ("information", "social"), "domain_knowledge"), versions={"emotion": "e1"})
    exported = {**written, "id": 41, "annotations": [{"result": written["predictions"][0]["result"]}]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps([exported], ensure_ascii=False), encoding="utf-8")
    (record,) = read_label_studio(path)
    assert record.text == "前方高能" and record.id == "41"
    assert record.labels == ("information", "social") and record.subcategories == ("domain_knowledge",)
