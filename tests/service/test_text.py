from __future__ import annotations

import math

from service.text import Preprocessing, preprocess, text_features


def test_preprocess_folds_width_collapses_runs_and_whitespace() -> None:
    config = Preprocessing()
    assert preprocess("哈哈哈哈哈哈哈", config) == "哈哈哈"
    assert preprocess("2333333", config) == "2333"
    assert preprocess("ＡＷＳＬ！！", config) == "AWSL!!"
    assert preprocess("  前方\t\n高能  ", config) == "前方 高能"


def test_preprocess_can_be_disabled() -> None:
    config = Preprocessing(unicode_form="none", max_char_run=0, collapse_whitespace=False)
    assert preprocess(" 哈哈哈哈哈 ", config) == " 哈哈哈哈哈 "


def test_text_features_values() -> None:
    log_words, chars, questions, has_url, digits = text_features("这是BV1xx411c7mD吗？看 https://b23.tv/abc 123")
    assert chars == len("这是BV1xx411c7mD吗？看 https://b23.tv/abc 123")
    assert questions == 1.0
    assert has_url == 1.0
    assert digits == 10.0
    assert log_words > math.log1p(4)
    assert text_features("草")[3] == 0.0
