from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.bulk.shards import ShardError, check_shard, shard_of


@pytest.mark.parametrize("num_shards", [1, 2, 3, 16])
def test_every_chunk_has_exactly_one_shard_and_a_file_is_spread_round_robin(num_shards: int) -> None:
    for key in ["a.parquet", "2019/videos.csv.gz", "弹幕.jsonl"]:
        owners = [shard_of(key, chunk, num_shards) for chunk in range(5 * num_shards)]
        assert all(0 <= owner < num_shards for owner in owners)
        # consecutive chunks go to consecutive shards: each shard gets 5 of the 5 x num_shards chunks
        assert sorted(owners.count(shard) for shard in range(num_shards)) == [5] * num_shards
        assert all((owners[i + 1] - owners[i]) % num_shards == 1 % num_shards for i in range(len(owners) - 1))


def test_the_owner_is_the_same_in_every_process() -> None:
    # The Job's pods must agree on the partition: no hash() (randomised per process by PYTHONHASHSEED).
    keys = ["a.parquet", "2019/videos.csv.gz", "弹幕.jsonl"]
    here = [shard_of(key, chunk, 7) for key in keys for chunk in range(10)]
    code = f"from service.bulk.shards import shard_of; print([shard_of(k, c, 7) for k in {keys!r} for c in range(10)])"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert there.stdout.strip() == str(here)


@pytest.mark.parametrize(("index", "count", "message"), [(0, 0, "--num-shards"), (3, 3, "[0, 2]"), (-1, 2, "[0, 1]")])
def test_bad_shard_arguments_are_refused_with_the_range(index: int, count: int, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        check_shard(index, count)
