from __future__ import annotations

import pytest
from tokenizers import normalizers

from training.encoders.charsmap import build_precompiled_charsmap

# Keys of 1-4 UTF-8 bytes sharing prefixes, deletions and multi-character replacements.
MAPPING: dict[str, str] = {
    **{chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5E)},  # full-width ASCII, not ～ (U+FF5E)
    "\u3000": " ",
    "\t": " ",
    "\x01": "",
    "\u200b": "",
    "ﬁ": "fi",
    "㍻": "平成",
    "①": "1",
    "𝐀": "A",  # 4-byte key
    "é": "e\u0301",
}


@pytest.fixture(scope="module")
def normaliser() -> normalizers.Normalizer:
    return normalizers.Precompiled(build_precompiled_charsmap(MAPPING))


def test_every_key_is_rewritten(normaliser: normalizers.Normalizer) -> None:
    for source, target in MAPPING.items():
        assert normaliser.normalize_str(source) == target, f"U+{ord(source):04X}"


def test_no_other_character_of_the_basic_plane_changes(normaliser: normalizers.Normalizer) -> None:
    changed = [
        f"U+{code:04X}"
        for code in range(1, 0x10000)
        if not 0xD800 <= code < 0xE000 and chr(code) not in MAPPING and normaliser.normalize_str(chr(code)) != chr(code)
    ]
    assert changed == []


def test_text_is_rewritten_character_by_character(normaliser: normalizers.Normalizer) -> None:
    assert normaliser.normalize_str("好可爱～！ＡＷＳＬ\t\x01草①") == "好可爱～!AWSL 草1"


def test_empty_mapping_changes_nothing() -> None:
    normaliser = normalizers.Precompiled(build_precompiled_charsmap({}))
    assert normaliser.normalize_str("前方高能！") == "前方高能！"


@pytest.mark.parametrize("mapping", [{"": "x"}, {"\0": "x"}, {"a": "\0"}])
def test_keys_and_values_the_trie_cannot_hold_are_refused(mapping: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"NUL|non-empty"):
        build_precompiled_charsmap(mapping)
