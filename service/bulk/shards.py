"""Which shard owns which chunk: a deterministic partition of the input, the same in every process.

A chunk is ``chunk_rows`` consecutive rows of one input file. Chunk ``c`` of the file keyed ``key`` belongs to
shard ``(crc32(key) + c) % num_shards``: every chunk has exactly one owner, a file's chunks go round-robin over
the shards (so one big file is spread over all of them), and adding a file does not move the chunks of another.
CRC-32, not ``hash()``: Python randomises string hashes per process.
"""

from __future__ import annotations

import zlib


class ShardError(ValueError):
    """Shard index or count out of range."""


def check_shard(shard_index: int, num_shards: int) -> None:
    if num_shards < 1:
        raise ShardError(f"--num-shards must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ShardError(f"--shard-index must be in [0, {num_shards - 1}] for {num_shards} shard(s), got {shard_index}")


def shard_of(file_key: str, chunk_index: int, num_shards: int) -> int:
    """The shard that owns chunk ``chunk_index`` of the file ``file_key``."""
    return (zlib.crc32(file_key.encode("utf-8")) + chunk_index) % num_shards
